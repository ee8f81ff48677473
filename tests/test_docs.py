"""Every ```python block of README.md and docs/**/*.md runs as a user would run it.

Each block is written to a file in a fresh temporary directory and run there by a fresh
interpreter (its own namespace, no state from other blocks), twice in a row: a block must be
self-contained and re-runnable (temporary paths, cleanup). Blocks that are not meant to run
(shell commands, output) use ```bash or ```text fences and are not collected.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```\s*$", re.S | re.M)
# the area pages, each of which must hold at least one runnable example
AREAS = ("clearing", "streaming", "engine", "pacing", "credit", "shading", "errors",
         "distributed")


def _blocks() -> list:
    params = []
    for page in PAGES:
        text = page.read_text()
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            params.append(pytest.param(m.group(1), id=f"{page.relative_to(ROOT)}:{line}"))
    return params


BLOCKS = _blocks()


def test_every_area_page_has_runnable_examples() -> None:
    ids = [p.id for p in BLOCKS]
    assert any(i.startswith("README.md:") for i in ids)
    for area in AREAS:
        assert any(i.startswith(f"docs/{area}.md:") for i in ids), f"docs/{area}.md has none"


def test_fences_are_closed_and_tagged() -> None:
    # an untagged or unclosed fence would hide a block from the collector
    for page in PAGES:
        fences = re.findall(r"^```(\S*)", page.read_text(), re.M)
        assert len(fences) % 2 == 0, f"{page.name}: unbalanced ``` fences"
        openers = fences[0::2]
        assert all(openers), f"{page.name}: a code block without a language tag"


@pytest.mark.parametrize("code", BLOCKS)
def test_block_runs_twice(code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    for run in (1, 2):
        out = subprocess.run(
            [sys.executable, "-P", str(script)], cwd=tmp_path, capture_output=True, text=True,
            timeout=180,
        )
        assert out.returncode == 0, f"run {run} failed:\n{out.stdout}\n{out.stderr}"


def _anchors(page: Path) -> set[str]:
    text = page.read_text()
    heads = re.findall(r"^#+ (.+)$", FENCE.sub("", text), re.M)
    slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}
    return slugs | set(re.findall(r'<a id="([^"]+)">', text))


def test_relative_links_resolve() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if "://" in target:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.relative_to(ROOT)}: broken link {target}"
            if anchor and dest.suffix == ".md":
                assert anchor in _anchors(dest), f"{page.relative_to(ROOT)}: no anchor {target}"
