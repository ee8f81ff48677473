"""Recycled output buffers for the array APIs.

A fresh numpy array of a few MB or more is a new ``mmap`` from the allocator: the first write to
each 4 KiB page is a page fault and the kernel zeroes the page. Clearing 10M bids writes 136 MB of
fresh output (12 bytes per bid plus 16 per auction); on the 2-vCPU bench machine the page faults
were ~15 ms of a ~35 ms call, longer than the clearing itself takes to write the same bytes into
memory that is already mapped. A service that clears batch after batch pays that on every call,
and two threads clearing at once also contend on the kernel's page-table lock.

``OutputPool`` keeps the buffers of large results after their arrays are gone and hands them out
again. A buffer is reused only when nothing references it any more: every result array is a view
of its buffer (numpy keeps the buffer alive through ``array.base``, also for views of views and
for memoryviews), and the pool checks the buffer's reference count under a lock before reusing
it. So a result the caller still holds is never overwritten. The kernels write every element of
their outputs, so recycled buffers need no zeroing.
"""

from __future__ import annotations

import sys
import threading
from math import prod

import numpy as np

from rtbcore.errors import InvalidInputError

_MIB = 1 << 20
# granularity of pooled buffers: sizes round up to this, so that batches of similar sizes share
_ROUND = 2 * _MIB


def _free_refcount() -> int | None:
    """What ``sys.getrefcount(lst[i])`` reads for an array held only by the list ``lst``, or
    None when this interpreter does not count a view's hold on its base (the pool then stays
    off rather than guess)."""
    probe = [np.empty(16, np.uint8)]
    free = sys.getrefcount(probe[0])
    view = probe[0][:8].view(np.int64)
    held = sys.getrefcount(probe[0])
    del view
    return free if held == free + 1 and sys.getrefcount(probe[0]) == free else None


_FREE = _free_refcount()


class OutputPool:
    """Recycles the buffers behind large result arrays (see the module docs).

    ``max_bytes``: most bytes of buffers the pool keeps (in use or free); past it, results are
    plain ``np.empty`` arrays and free buffers are dropped to make room. 0 turns the pool off and
    frees what it holds. ``min_bytes``: smaller results are always plain ``np.empty`` (the
    allocator already recycles small blocks).
    """

    def __init__(self, max_bytes: int = 512 * _MIB, min_bytes: int = _MIB) -> None:
        self._lock = threading.Lock()
        self._bufs: list[np.ndarray] = []  # uint8, each referenced here and by its live views
        self._max = 0
        self.min_bytes = int(min_bytes)
        self.max_bytes = max_bytes
        self._hits = 0
        self._misses = 0
        self._bypassed = 0

    @property
    def max_bytes(self) -> int:
        return self._max

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        value = int(value)
        if value < 0:
            raise InvalidInputError(f"max_bytes: must be >= 0, got {value}")
        with self._lock:
            self._max = value
            self._evict(0)

    def empty(self, shape: int | tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """An uninitialised C-contiguous array, from a recycled buffer when it is large enough
        to be worth it and the pool has room; otherwise ``np.empty``."""
        dt = np.dtype(dtype)
        shp = (shape,) if isinstance(shape, int) else tuple(shape)
        nbytes = prod(shp) * dt.itemsize
        if nbytes < self.min_bytes or nbytes > self._max or _FREE is None:
            return np.empty(shp, dt)
        with self._lock:
            buf = self._take(nbytes)
        if buf is None:
            return np.empty(shp, dt)
        return buf[:nbytes].view(dt).reshape(shp)

    def _take(self, nbytes: int) -> np.ndarray | None:
        """The smallest free buffer of at least ``nbytes``, else a new one if there is room."""
        best = -1
        for i in range(len(self._bufs)):
            # only the list holds it (+ getrefcount's argument): no view of it is alive
            if self._bufs[i].nbytes >= nbytes and self._is_free(i):
                if best < 0 or self._bufs[i].nbytes < self._bufs[best].nbytes:
                    best = i
        if best >= 0:
            self._hits += 1
            return self._bufs[best]
        size = -(-nbytes // _ROUND) * _ROUND
        if not self._evict(size):
            self._bypassed += 1
            return None
        self._misses += 1
        buf = np.empty(size, np.uint8)
        self._bufs.append(buf)
        return buf

    def _evict(self, room: int) -> bool:
        """Drops free buffers (largest first) until ``room`` more bytes fit under max_bytes;
        False if buffers in use already take too much."""
        while self._bufs and self._held() + room > self._max:
            free = [i for i in range(len(self._bufs)) if self._is_free(i)]
            if not free:
                break
            del self._bufs[max(free, key=lambda i: self._bufs[i].nbytes)]
        return self._held() + room <= self._max

    def _is_free(self, i: int) -> bool:
        return sys.getrefcount(self._bufs[i]) == _FREE

    def _held(self) -> int:
        return sum(b.nbytes for b in self._bufs)

    def clear(self) -> None:
        """Frees every buffer no result holds any more."""
        with self._lock:
            self._bufs = [self._bufs[i] for i in range(len(self._bufs)) if not self._is_free(i)]

    def stats(self) -> dict[str, int]:
        """``held_bytes`` (buffers kept, in use or free), ``in_use_bytes``, ``buffers``,
        ``hits`` (results served from a recycled buffer), ``misses`` (new pooled buffers),
        ``bypassed`` (no room: plain np.empty)."""
        with self._lock:
            n = len(self._bufs)
            in_use = sum(self._bufs[i].nbytes for i in range(n) if not self._is_free(i))
            return {
                "held_bytes": self._held(),
                "in_use_bytes": in_use,
                "buffers": len(self._bufs),
                "hits": self._hits,
                "misses": self._misses,
                "bypassed": self._bypassed,
            }


output_pool = OutputPool()
"""The pool behind the clearing functions' results (``rtbcore.output_pool``)."""
