"""The ```py examples of docs/distributed.md need a Redis server, so tests/test_docs.py does not
collect them; this runs each one, unchanged apart from the server's URL, against a server of
its own, twice (from an empty server each time)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "distributed.md"
FENCE = re.compile(r"^```py\n(.*?)^```\s*$", re.S | re.M)
DOC_URL = "redis://127.0.0.1:6379/0"
TEXT = PAGE.read_text()
BLOCKS = [
    pytest.param(m.group(1), id=f"docs/distributed.md:{TEXT.count(chr(10), 0, m.start()) + 1}")
    for m in FENCE.finditer(TEXT)
]


def test_the_page_has_redis_examples() -> None:
    assert len(BLOCKS) >= 2
    assert all(DOC_URL in p.values[0] for p in BLOCKS)


@pytest.mark.parametrize("code", BLOCKS)
def test_redis_example_runs_twice(code: str, tmp_path: Path, redis_server) -> None:
    script = tmp_path / "example.py"
    script.write_text(code.replace(DOC_URL, redis_server.url))
    for run in (1, 2):
        c = redis_server.client()
        c.flushall()
        c.close()
        out = subprocess.run([sys.executable, "-P", str(script)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"run {run} failed:\n{out.stdout}\n{out.stderr}"
