"""The real nvme-cli captures in tests/fixtures/nvme-cli-captures (see its README)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "nvme-cli-captures"
# Cases with one page and what nvme-cli printed for it; case6 is an interval run.
CASES = sorted(p.name for p in ROOT.iterdir() if (p / "page.bin").is_file())
INTERVAL = ROOT / "case6-local-interval"
# The case other tests take as "a page of this kind" (instance storage with bands; EBS).
TYPICAL = {"instance_store": "case1-local-v1", "ebs": "case3-ebs-v0"}
# The line nvme-cli prints before the first block of an interval run.
BANNER = (INTERVAL / "nvme-3.0rc1-interval-1s.out").read_text().splitlines(keepends=True)[0]


def kind(case: str) -> str:
    return "ebs" if "-ebs-" in case else "instance_store"


def page(case: str) -> bytes:
    return (ROOT / case / "page.bin").read_bytes()


def output(case: str, name: str) -> str:
    """One capture, e.g. output("case1-local-v1", "3.0rc1-text-details")."""
    return (ROOT / case / f"nvme-{name}.out").read_text()


def path(case: str, name: str) -> Path:
    return ROOT / case / f"nvme-{name}.out"
