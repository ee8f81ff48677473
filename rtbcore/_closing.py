"""The context-manager protocol of the handles that own a native resource."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class ContextHandle:
    """``with handle:`` gives the handle and calls ``handle._exit(ok)`` on the way out (``ok``:
    the block did not raise); by default that calls the handle's ``close()``."""

    def _exit(self, ok: bool) -> None:
        self.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc_type is None)
