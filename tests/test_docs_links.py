"""Every relative link and image in README.md and docs/*.md names a file that exists, and every
``#anchor`` names a heading of the page it points into."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: ``[text](target)`` and ``![alt](target)``; a title after the target is not used here.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_anchor_follows_githubs_rule() -> None:
    assert anchor("Refine: a second crop from the first answer") == (
        "refine-a-second-crop-from-the-first-answer"
    )
    assert anchor("68 points taught by people: `tcnn68h` (the default)") == (
        "68-points-taught-by-people-tcnn68h-the-default"
    )


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n[ok](#top) [gone](missing.md) ![i](x.png) [no](#end)\n")
    page.write_text(page.read_text() + "```\n[a](b)\n```\n")
    assert links(page) == ["#top", "missing.md", "x.png", "#end"]
    assert problems(page) == [
        "page.md: missing.md: no such file",
        "page.md: x.png: no such file",
        "page.md: #end: no such heading",
    ]


def problems(page: Path) -> list[str]:
    """What is wrong with the page's relative links, one line each."""
    found = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            found.append(f"{page.name}: {target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            found.append(f"{page.name}: {target}: no such heading")
    return found


def test_there_are_pages_with_links() -> None:
    assert sum(len(links(p)) for p in PAGES) >= 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    assert problems(page) == []
