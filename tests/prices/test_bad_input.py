"""Bad price lists and a damaged cache: one line on stderr, status 2, the old cache whole."""

from __future__ import annotations

import json
import shutil

import pytest

from devkit import offers
from nitrometer.cli import main
from nitrometer.errors import NitrometerError
from nitrometer.prices.cache import prices_dir
from nitrometer.prices.lookup import load_region, on_demand_price
from nitrometer.savings.reference import Reference

EC2_EAST, EC2_WEST = offers.ec2_path("us-east-1"), offers.ec2_path("eu-west-1")
SP_INDEX = f"{offers.SP_BASE}/current/region_index.json"
EC2_INDEX = f"{offers.EC2_BASE}/current/region_index.json"


def _replace(path: str, old: bytes, new: bytes):
    def mutate(root):
        target = root / path.lstrip("/")
        body = target.read_bytes()
        assert old in body
        target.write_bytes(body.replace(old, new, 1))
    return mutate


def _json(path: str, change):
    def mutate(root):
        doc = offers.index_files()[path]
        change(doc)
        offers.write(root, path, json.dumps(doc))
    return mutate


def _headerless(root):
    target = root / EC2_WEST.lstrip("/")
    target.write_text("\n".join(target.read_text().splitlines()[:5]) + "\n")


# name -> (mutation of the mirror, paths whose connection drops, words the line must hold)
BAD = {
    "non-numeric price": (_replace(EC2_WEST, b'"0.1070000000"', b'"n/a"'), (), "'n/a'"),
    "non-UTF-8 byte": (_replace(EC2_WEST, b"EU (Ireland)", b"EU (Irel\xffnd)"), (),
                       "not UTF-8"),
    "connection dropped": (None, (EC2_WEST,), "dropped after"),
    "Savings Plans region index as a map": (
        _json(SP_INDEX, lambda d: d.update(regions={r["regionCode"]: r for r in d["regions"]})),
        (), "not an array"),
    "EC2 region index as an array": (
        _json(EC2_INDEX, lambda d: d.update(regions=list(d["regions"].values()))), (),
        "not an object"),
    "offers as an array": (
        _json("/offers/v1.0/aws/index.json", lambda d: d.update(offers=[d["offers"]])), (),
        "not an object"),
    "region entry without its URL": (
        _json(EC2_INDEX, lambda d: d["regions"]["eu-west-1"].pop("currentVersionUrl")), (),
        "currentVersionUrl"),
    "no column names": (_headerless, (), "no column names"),
    "non-numeric Savings Plans rate": (
        _replace(offers.sp_path("eu-west-1"), b'"price": "0.0602"', b'"price": "cheap"'), (),
        "'cheap'"),
    "Savings Plans file cut short": (None, (offers.sp_path("eu-west-1"),), "dropped after"),
    "non-UTF-8 byte in the Savings Plans file": (
        _replace(offers.sp_path("eu-west-1"), b"EU-BoxUsage:m6g.large", b"EU-BoxUsage:m6g.l\xff"),
        (), "not a Savings Plans price list file"),
    "Savings Plans file without products": (
        _replace(offers.sp_path("eu-west-1"), b'"products"', b'"productz"'), (), "no products"),
}


def _snapshot(cache) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in prices_dir(cache).iterdir()}


@pytest.mark.parametrize("name", BAD)
def test_bad_price_list_is_one_line_and_keeps_the_cache(name, mirrored_cache, tmp_path, capsys):
    mutate, drop, words = BAD[name]
    root = offers.write_tree(tmp_path / "pricing")
    if mutate:
        mutate(root)
    cache = tmp_path / "cache"
    shutil.copytree(mirrored_cache, cache)
    before = _snapshot(cache)
    capsys.readouterr()
    with offers.serve(root, drop=drop) as url:
        # us-east-1 comes first and is complete: it is not installed alone either
        code = main(["prices", "update", "--region", "us-east-1", "eu-west-1",
                     "--base-url", url, "--cache-dir", str(cache), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert words in err, err
    assert _snapshot(cache) == before  # the same files, byte for byte, and no scratch files


@pytest.mark.parametrize("content", [b"", b"region,rates\nus-east-1,12\n",
                                     b"SQLite format 3\x00" + b"\x00" * 200])
def test_damaged_cache_is_one_line(content, mirrored_cache, tmp_path, capsys):
    cache = tmp_path / "cache"
    shutil.copytree(mirrored_cache, cache)
    (prices_dir(cache) / "us-east-1.sqlite").write_bytes(content)
    code = main(["prices", "list", "--cache-dir", str(cache)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "is damaged" in err and "nitrometer prices update --region us-east-1" in err
    with pytest.raises(NitrometerError, match="damaged"):
        Reference(cache_dir=cache, use_cache=True).price("m5.large", "us-east-1")
    # the agent's lookup says so and falls back to the packaged snapshot
    warnings = []
    price = on_demand_price("m5.large", "us-east-1", cache, warn=warnings.append)
    assert price.usd_per_hour == 0.096 and price.source == "packaged snapshot"
    assert len(warnings) == 1 and "damaged" in warnings[0]
    assert load_region(cache, "eu-west-1").count() == 18  # the other region still serves
