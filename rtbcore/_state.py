"""The envelope of every saved state: ``to_state()`` dicts carry their class and format version.

A state is a plain dict of numbers, strings and numpy arrays (picklable, and storable as
JSON once the arrays are lists). ``from_state`` refuses a state of another class or another
format version with :class:`rtbcore.errors.StateError`, naming both.
"""

from __future__ import annotations

from typing import Any

from rtbcore.errors import StateError

STATE_VERSION = 1


def envelope(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"format": f"rtbcore.{kind}", "version": STATE_VERSION, **body}


def opened(state: object, kind: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """The state dict, checked: its class, its version, and that ``keys`` are present."""
    if not isinstance(state, dict):
        raise StateError(f"state: expected a dict from to_state(), got {type(state).__name__}")
    fmt = state.get("format")
    if fmt != f"rtbcore.{kind}":
        raise StateError(f"state: is a {fmt!r} state, not an 'rtbcore.{kind}' one")
    version = state.get("version")
    if version != STATE_VERSION:
        raise StateError(
            f"state: format version {version!r} of {fmt} cannot be read by this rtbcore "
            f"(it reads version {STATE_VERSION})"
        )
    missing = [k for k in keys if k not in state]
    if missing:
        raise StateError(f"state: {fmt} state lacks {', '.join(missing)}")
    return state
