"""Stubs of the PyO3 module _rtbcore (rust/py/src). Users import rtbcore, never this module."""

__version__: str

# --- clearing.rs ---
# Private kernels of rtbcore.clearing (which converts the arrays before calling them).
# PyO3 lists every added name in the module's __all__ (other sections: `__all__ += [...]`).

__all__ = ["__version__", "check_auction_batch", "clear_single", "clear_slots"]

import numpy as _cl_np
import numpy.typing as _cl_npt

def check_auction_batch(
    offsets: _cl_npt.NDArray[_cl_np.int64],
    prices: _cl_npt.NDArray[_cl_np.float64],
    quality: _cl_npt.NDArray[_cl_np.float64] | None,
    reserve: float | _cl_npt.NDArray[_cl_np.float64],
) -> None: ...
def clear_single(
    offsets: _cl_npt.NDArray[_cl_np.int64],
    prices: _cl_npt.NDArray[_cl_np.float64],
    quality: _cl_npt.NDArray[_cl_np.float64] | None,
    reserve: float | _cl_npt.NDArray[_cl_np.float64],
    rule: str,
    increment: float,
    raise_invalid: bool,
    winner: _cl_npt.NDArray[_cl_np.int64],
    price: _cl_npt.NDArray[_cl_np.float64],
    min_to_win: _cl_npt.NDArray[_cl_np.float64],
    loss_reason: _cl_npt.NDArray[_cl_np.int32],
) -> int: ...
def clear_slots(
    offsets: _cl_npt.NDArray[_cl_np.int64],
    prices: _cl_npt.NDArray[_cl_np.float64],
    quality: _cl_npt.NDArray[_cl_np.float64] | None,
    reserve: float | _cl_npt.NDArray[_cl_np.float64],
    slot_ctrs: _cl_npt.NDArray[_cl_np.float64],
    rule: str,
    increment: float,
    raise_invalid: bool,
    winner: _cl_npt.NDArray[_cl_np.int64],
    price: _cl_npt.NDArray[_cl_np.float64],
) -> int: ...

# --- queue.rs ---

# --- ring.rs ---

# --- engine.rs ---
