"""The runnable examples of the README's clearing section run and their asserts hold."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_clearing_examples_run():
    text = README.read_text()
    end = text.index("<!-- ===== end section: clearing")
    section = text[text.index("## Clearing auctions") : end]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2  # the main example, the output pool
    scope: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"README.md (clearing example {i + 1})", "exec"), scope)
