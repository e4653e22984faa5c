"""The documentation stays short and its references stay true: README.md is at most 160 lines, every relative
link of README.md, BENCHMARKS.md, MODEL_ZOO.md and docs/*.md names an existing file, and every tool, script and
config path README.md names exists."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "MODEL_ZOO.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 160, f"README.md has {len(lines)} lines: move user guides to docs/"


@pytest.mark.parametrize("doc", [d for d in DOCS if d.exists()], ids=lambda d: str(d.relative_to(ROOT)))
def test_relative_links_exist(doc):
    missing = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (http:, mailto:) or an anchor in the same page
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert not missing, f"{doc.relative_to(ROOT)} links to missing files: {missing}"


def test_readme_paths_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![\w/.<>-])((?:tools|scripts|configs)/[\w./-]+\.(?:py|sh))", text))
    assert named, "README.md names no tool, script or config: the pattern below no longer matches it"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"README.md names files that do not exist: {missing}"
