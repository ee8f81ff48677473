"""The package installs, imports and exposes its public API; errors subclass the stdlib."""

import subprocess
import sys

import rtbcore
from rtbcore import errors


def test_public_names_resolve():
    for name in rtbcore.__all__:
        assert hasattr(rtbcore, name), name


def test_native_modules_import():
    import _rtbcore

    import rtbcore._fastpath  # noqa: F401

    assert _rtbcore.__version__ == rtbcore.__version__


def test_errors_subclass_stdlib():
    assert issubclass(errors.InvalidBidError, ValueError)
    assert issubclass(errors.QueueFull, BufferError)
    assert issubclass(errors.RingOverrun, LookupError)
    e = errors.RingOverrun("lapped", 5, 12)
    assert (e.lost, e.next_seq) == (5, 12)


def test_cli_help_runs(tmp_path):
    # cwd elsewhere: from the repo root, `-m` would import the source tree, which has no
    # compiled rtbcore._fastpath, instead of the installed package.
    out = subprocess.run(
        [sys.executable, "-m", "rtbcore.cli", "--help"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    assert "demo" in out.stdout
