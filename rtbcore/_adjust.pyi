"""Stubs of the Cython module rtbcore._adjust (src/_adjust.pyx), private to rtbcore.adjust."""

from typing import final

import numpy as np
import numpy.typing as npt

@final
class _Adjuster:
    @property
    def strategy(self) -> int: ...
    @property
    def max_increase(self) -> float: ...
    @property
    def min_decrease(self) -> float: ...
    @property
    def frequency(self) -> float: ...
    @property
    def a(self) -> float: ...
    @property
    def b(self) -> float: ...
    @property
    def multiplier(self) -> npt.NDArray[np.float64]: ...
    @property
    def last_update(self) -> npt.NDArray[np.float64]: ...
    def __init__(
        self,
        strategy: int,
        n: int,
        max_increase: float,
        min_decrease: float,
        frequency: float,
        a: float,
        b: float,
    ) -> None: ...
    def adjust(
        self,
        bids: npt.NDArray[np.float64],
        signal: npt.NDArray[np.float64],
        scalar_signal: bool,
        now: float,
        out: npt.NDArray[np.float64],
    ) -> tuple[int, int]: ...
