"""The runnable example of the README's clearing section runs and its asserts hold."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_clearing_example_runs():
    text = README.read_text()
    section = text[text.index("## Clearing auctions") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md (clearing example)", "exec"), {})
