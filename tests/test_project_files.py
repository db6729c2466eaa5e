"""The files a newcomer reads first agree with the package and with each other: the LICENSE
is the license the metadata declares, and every BENCHMARKS.md section the docs cite exists
under the title they give."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
# "BENCHMARKS.md, section 9 (The lean agent)" or "BENCHMARKS.md (section 9)", across a line
CITATION = re.compile(r"BENCHMARKS\.md,?\s+\(?section\s+(\d+)\)?(?:\s+\(([^)]+)\))?")
ANCHOR = re.compile(r"BENCHMARKS\.md#([\w-]+)")


def test_license_file_is_the_apache_license_the_metadata_declares():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license = "Apache-2.0"$', pyproject, re.M)
    assert re.search(r'^license-files = \["LICENSE"\]$', pyproject, re.M)
    text = (ROOT / "LICENSE").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[:3] == ["Apache License", "Version 2.0, January 2004",
                         "http://www.apache.org/licenses/"]
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply" in text
    sections = re.findall(r"^\s+(\d+)\. ([A-Z][\w ,]+)\.", text, re.M)
    assert [n for n, _ in sections] == [str(i) for i in range(1, 10)], sections


def benchmark_sections() -> dict[str, str]:
    text = (ROOT / "BENCHMARKS.md").read_text()
    return dict(re.findall(r"^## (\d+)\. (.+)$", text, re.M))


def github_anchor(title: str) -> str:
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def test_every_cited_benchmarks_section_exists():
    sections = benchmark_sections()
    anchors = {github_anchor(f"{n}. {t}") for n, t in sections.items()}
    cited = 0
    for doc in DOCS:
        text = doc.read_text()
        for number, title in CITATION.findall(text):
            cited += 1
            assert number in sections, f"{doc.name}: BENCHMARKS.md has no section {number}"
            # The title with the number: a renumbered report shows here, not to a reader.
            assert title, f"{doc.name}: cite BENCHMARKS.md section {number} with its title"
            assert sections[number].startswith(title), (
                f"{doc.name}: section {number} is {sections[number]!r}, not {title!r}")
        for anchor in ANCHOR.findall(text):
            cited += 1
            assert anchor in anchors, f"{doc.name}: BENCHMARKS.md#{anchor} does not exist"
    assert cited >= 2  # the citation forms above still match how the docs cite


def test_benchmarks_sections_stand_in_number_order():
    numbers = [int(n) for n in benchmark_sections()]
    assert numbers and numbers == sorted(numbers), numbers
