"""Stubs of the Cython module rtbcore._floors (src/_floors.pyx), private to rtbcore.floors."""

from typing import final

import numpy as np
import numpy.typing as npt

def _myerson(x: npt.NDArray[np.float64]) -> tuple[float, float, int]: ...
def _top_two(
    offsets: npt.NDArray[np.int64],
    prices: npt.NDArray[np.float64],
    quality: npt.NDArray[np.float64] | None,
    top: npt.NDArray[np.float64],
    second: npt.NDArray[np.float64],
    index: npt.NDArray[np.int64],
) -> int: ...
@final
class _FloorState:
    @property
    def n_keys(self) -> int: ...
    @property
    def K(self) -> int: ...
    @property
    def lam(self) -> float: ...
    @property
    def min_fill(self) -> float: ...
    @property
    def min_weight(self) -> float: ...
    @property
    def floors(self) -> npt.NDArray[np.float64]: ...
    @property
    def rng_state(self) -> int: ...
    def __init__(
        self,
        n_keys: int,
        grid: npt.NDArray[np.float64],
        lam: float,
        min_fill: float,
        min_weight: float,
        initial: float,
        explore: float,
        steps: int,
        seed: int,
    ) -> None: ...
    def update(
        self,
        key: npt.NDArray[np.int64],
        floor: npt.NDArray[np.float64],
        price: npt.NDArray[np.float64],
        sold: npt.NDArray[np.uint8],
        top: npt.NDArray[np.float64],
        second: npt.NDArray[np.float64],
        mode: int,
    ) -> tuple[int, int]: ...
    def estimates(
        self, key: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def lookup(
        self, key: npt.NDArray[np.int64], out: npt.NDArray[np.float64], explore: bool
    ) -> int: ...
