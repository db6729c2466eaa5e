"""`nitrometer prices`: keep the local cache of EC2, RI and Savings Plans rates up to date."""

from __future__ import annotations

import argparse
import sys

from nitrometer.prices.bulk import DEFAULT_BASE_URL


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    update = actions.add_parser(
        "update", help="read the AWS Price List bulk API into the cache",
        description="Read the public AWS Price List bulk API (no credentials) for EC2 and "
                    "Savings Plans and cache the rates per region.")
    update.add_argument("--region", nargs="+", metavar="REGION",
                        help="regions to update (default: every region the price list has)")
    update.add_argument("--base-url", default=DEFAULT_BASE_URL,
                        help=f"price list endpoint (default {DEFAULT_BASE_URL})")
    update.add_argument("--no-progress", action="store_true", help="no progress bar")
    show = actions.add_parser("list", help="the cached regions and their dates")
    for sub in (update, show):
        sub.add_argument("--cache-dir", metavar="DIR",
                         help="price cache (default $NITROMETER_CACHE_DIR, under systemd "
                              "$STATE_DIRECTORY, else $XDG_CACHE_HOME/nitrometer)")


def run(args: argparse.Namespace) -> int:
    from nitrometer.prices.cache import cached_regions, prices_dir
    from nitrometer.prices.lookup import load_region

    if args.action == "update":
        from nitrometer.prices.bulk import update

        update(args.region, args.cache_dir, args.base_url,
               progress=not args.no_progress and sys.stderr.isatty())
        return 0
    regions = cached_regions(args.cache_dir)
    if not regions:
        print(f"no cached prices in {prices_dir(args.cache_dir)}; run nitrometer prices update",
              file=sys.stderr)
        return 0
    for region in regions:
        cached = load_region(args.cache_dir, region)
        print(f"{region}\t{cached.count()} rates\tas of {cached.as_of}\t"
              f"updated {cached.meta.get('updated_at', '?')}\t{cached.source}")
        cached.close()
    return 0
