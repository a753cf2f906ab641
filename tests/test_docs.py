"""The README and benchmarks/RESULTS.md link to result files and to each other's sections; every
link must lead somewhere (a moved paragraph or a renamed result file breaks them silently)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "RESULTS.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(doc: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings: lower case, punctuation but '-' dropped,
    spaces to '-', and '-1', '-2', ... on repeats."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in doc.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if fenced or not line.startswith("#"):
            continue
        text = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(doc: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    return [m for m in LINK.findall(text) if not m.startswith(("http://", "https://", "mailto:"))]


def test_the_anchor_rule_matches_githubs():
    doc = ROOT / "README.md"
    assert "set-up-tune-test" in anchors(doc)  # "## Set up, tune, test"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_relative_link_leads_to_a_file_and_a_heading(doc):
    broken = []
    for link in links(doc):
        path, _, anchor = link.partition("#")
        target = (doc.parent / path).resolve() if path else doc
        if not target.exists():
            broken.append(f"{link} (no such file)")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link} (no such heading)")
    assert not broken, f"{doc.name}: " + "; ".join(broken)
