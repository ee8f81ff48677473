"""String ids for an integer engine: :class:`IdMap` interns strings as dense uint64 ids.

Real systems name auctions and bidders by strings (``"req-abc"``); the engine, the queue and the
ring carry integers. An ``IdMap`` gives each new string the next id (0, 1, 2, ... in order of
first sight) and maps ids back; ``AuctionEngine`` keeps one for auctions and one for bidders
and uses them wherever strings are given.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from rtbcore._state import envelope, opened
from rtbcore.errors import InvalidInputError, StateError

__all__ = ["IdMap", "is_string_ids"]

_MAX_ID = 2**63 - 1  # ids travel as int64 in results


def is_string_ids(x: object) -> bool:
    """Whether ``x`` is a string, or a list / tuple / array of strings (not bytes)."""
    if isinstance(x, str):
        return True
    if isinstance(x, np.ndarray):
        return x.dtype.kind == "U" or (x.dtype == object and x.size > 0 and isinstance(
            x.reshape(-1)[0], str))  # fmt: skip
    if isinstance(x, (list, tuple)) and x:
        return isinstance(x[0], str)
    return False


class IdMap:
    """A thread-safe interning table: string <-> uint64 id.

    ``ids(keys)`` returns the ids of a string or a sequence / array of strings, giving new
    strings the next ids in order of first sight (``insert=False`` refuses unknown strings
    instead); ``keys(ids)`` maps ids back (an object array of str). ``id(key)`` and
    ``key(i)`` are the scalar forms. Lookups of known strings take no lock; inserts take one, so
    threads interning the same new string get the same id. Vectorised: a block is reduced to
    its distinct strings (``np.unique``) before the table is consulted. ``to_state()`` /
    ``from_state()`` and pickle keep the mapping across restarts.
    """

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._ids: dict[str, int] = {}
        self._keys: list[str] = []
        self._lock = threading.Lock()
        for k in keys:
            self.id(k)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def id(self, key: str, insert: bool = True) -> int:
        """The id of one string (a new one gets the next id unless ``insert=False``)."""
        i = self._ids.get(key) if isinstance(key, str) else None
        if i is not None:
            return i
        if not isinstance(key, str):
            raise InvalidInputError(f"key: expected a str, got {key!r}")
        if not insert:
            raise InvalidInputError(f"key {key!r} is not in the IdMap")
        with self._lock:
            i = self._ids.get(key)
            if i is None:
                i = len(self._keys)
                if i > _MAX_ID:
                    raise InvalidInputError("IdMap is full: ids must stay within 2**63 - 1")
                self._keys.append(key)
                self._ids[key] = i
            return i

    def ids(self, keys: npt.ArrayLike, insert: bool = True) -> np.ndarray:
        """The ids (uint64, the keys' shape; a str gives shape ()) of a str or an array of str."""
        if isinstance(keys, str):
            return np.asarray(self.id(keys, insert), dtype=np.uint64)
        try:
            # a list stays Python str: numpy's fixed-width str dtype drops trailing NULs
            a = np.asarray(keys, dtype=object if isinstance(keys, (list, tuple)) else None)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"keys: cannot be read as an array ({e})") from None
        if a.size == 0:
            return np.zeros(a.shape, dtype=np.uint64)
        if a.dtype.kind != "U":
            flat = a.reshape(-1)
            bad = next((i for i, k in enumerate(flat) if not isinstance(k, str)), None)
            if bad is not None:
                raise InvalidInputError(f"keys[{bad}] = {flat[bad]!r}: expected a str")
            a = a.astype(object)
        uniq, inverse = np.unique(a.reshape(-1), return_inverse=True)
        got = np.empty(uniq.shape[0], dtype=np.uint64)
        table = self._ids
        missing = []
        for j, k in enumerate(uniq.tolist()):
            i = table.get(k)
            if i is None:
                missing.append(j)
            else:
                got[j] = i
        if missing:
            if not insert:
                raise InvalidInputError(f"key {str(uniq[missing[0]])!r} is not in the IdMap")
            # new keys get ids in order of first sight within the block
            first = np.full(uniq.shape[0], a.size, dtype=np.intp)
            np.minimum.at(first, inverse, np.arange(a.size))
            for j in sorted(missing, key=lambda j: first[j]):
                got[j] = self.id(str(uniq[j]))  # str(): np.str_ keys stay plain str
        return got[inverse].reshape(a.shape)

    def key(self, i: int) -> str:
        """The string of one id."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(self):
            raise InvalidInputError(f"id {i!r} is not in the IdMap (ids 0..{len(self) - 1})")
        return self._keys[int(i)]

    def keys(self, ids: npt.ArrayLike) -> np.ndarray:
        """The strings (an object array of the ids' shape) of an array of ids."""
        a = np.asarray(ids)
        if a.size and a.dtype.kind not in "iu":
            raise InvalidInputError(f"ids: expected integers, got dtype {a.dtype}")
        n = len(self._keys)
        flat = a.reshape(-1).astype(np.int64, copy=False) if a.size else np.zeros(0, np.int64)
        bad = np.flatnonzero((flat < 0) | (flat >= n))
        if bad.size:
            i = int(bad[0])
            raise InvalidInputError(f"ids[{i}] = {flat[i]} is not in the IdMap (ids 0..{n - 1})")
        table = np.array(self._keys[:n], dtype=object)
        return table[flat].reshape(a.shape)

    def to_state(self) -> dict[str, Any]:
        """The strings in id order (versioned)."""
        with self._lock:
            return envelope("IdMap", {"keys": list(self._keys)})

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IdMap:
        st = opened(state, "IdMap", ("keys",))
        keys = st["keys"]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise StateError("state keys: expected a list of str")
        m = cls(keys)
        if len(m) != len(keys):
            raise StateError("state keys: a key appears twice")
        return m

    def __reduce__(self) -> tuple[Any, ...]:
        return (IdMap.from_state, (self.to_state(),))

    def __repr__(self) -> str:
        return f"IdMap({len(self)} ids)"
