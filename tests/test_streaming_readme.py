"""The README's two-process BidRing example runs as printed and moves every bid."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _example() -> str:
    text = README.read_text()
    section = text.split("<!-- ===== section: streaming")[1].split("<!-- ===== end section")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    (code,) = [b for b in blocks if b.startswith("# two_process.py")]
    return code


@pytest.mark.skipif(sys.platform != "linux", reason="the example uses /dev/shm")
def test_two_process_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "two_process.py"
    script.write_text(_example())
    out = subprocess.run(
        [sys.executable, "-P", str(script)], capture_output=True, text=True, timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    ids = np.arange(100_000, dtype=np.uint64)
    total = float((0.5 + (ids % 7) * 0.25).sum())
    assert f"reader: 100000 bids, total price {total:.2f}" in out.stdout
    assert f"writer: 100000 bids, total price {total:.2f}" in out.stdout


def test_the_other_snippets_run(tmp_path: Path) -> None:
    text = README.read_text()
    section = text.split("<!-- ===== section: streaming")[1].split("<!-- ===== end section")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    others = [b for b in blocks if not b.startswith("# two_process.py")]
    assert len(others) == 2
    for i, code in enumerate(others):
        script = tmp_path / f"snippet{i}.py"
        # remove the ring file a snippet made under /dev/shm
        script.write_text(code + "\nimport os\nif 'ring' in globals(): os.remove(ring.path)\n")
        out = subprocess.run(
            [sys.executable, "-P", str(script)], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
