"""Stubs of the Cython module rtbcore._fastpath (src/_fastpath.pyx and its .pxi includes)."""

# --- clearing.pxi ---

# --- pacing.pxi ---

# --- credit.pxi ---

# --- shading.pxi ---
# Private kernels of rtbcore.shading (which validates shapes and dtypes before calling them).

import numpy as np
import numpy.typing as npt

def _shading_observe(
    bids: npt.NDArray[np.float64],
    won: npt.NDArray[np.uint8],
    price: npt.NDArray[np.float64],
    mtw: npt.NDArray[np.float64],
    has_price: bool,
    has_mtw: bool,
    max_bid: float,
    exact: npt.NDArray[np.float64],
    left: npt.NDArray[np.float64],
    right: npt.NDArray[np.float64],
    naive: npt.NDArray[np.float64],
) -> tuple[int, int]: ...
def _shading_turnbull(
    exact: npt.NDArray[np.float64],
    left: npt.NDArray[np.float64],
    right: npt.NDArray[np.float64],
    p: npt.NDArray[np.float64],
    max_iter: int,
    tol: float,
) -> int: ...
def _shading_argmax_table(
    F: npt.NDArray[np.float64], h: float, vstep: float, seg: npt.NDArray[np.intp]
) -> None: ...
def _shading_optimal_bid(
    values: npt.NDArray[np.float64],
    F: npt.NDArray[np.float64],
    h: float,
    vstep: float,
    seg: npt.NDArray[np.intp],
    out: npt.NDArray[np.float64],
) -> int: ...
