"""Stubs of the Cython module rtbcore._fastpath (src/_fastpath.pyx and its .pxi includes)."""

# --- _checks.pxi ---
# The argument rules every area shares, for the Python modules.

from typing import Any as _CkAny

import numpy as _ck_np
import numpy.typing as _ck_npt

def _check_seed(seed: _CkAny, name: str = "seed") -> int | None: ...
def _real_arg(x: _CkAny, name: str, what: str = "a real number") -> float: ...
def _float_arg(x: _CkAny, name: str, what: str = "a real number") -> float: ...
def _int_arg(x: _CkAny, name: str, lo: int, hi: int) -> int: ...
def _float_array_arg(
    x: _CkAny, name: str, what: str = "a real number or an array of them"
) -> _ck_npt.NDArray[_ck_np.float64]: ...

# --- clearing.pxi ---

from collections.abc import Iterable as _ClIterable
from typing import Any as _ClAny
from typing import SupportsFloat as _ClFloat

from typing_extensions import disjoint_base as _cl_disjoint_base

@_cl_disjoint_base
class Bid:
    """One bid (see rtbcore.Bid)."""

    def __init__(
        self,
        bidder_id: _ClAny,
        amount: _ClFloat,
        quality: _ClFloat = 1.0,
        creative_id: _ClAny = None,
    ) -> None: ...
    @property
    def bidder_id(self) -> _ClAny: ...
    @property
    def amount(self) -> float: ...
    @property
    def quality(self) -> float: ...
    @property
    def creative_id(self) -> _ClAny: ...
    @property
    def adjusted(self) -> float: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@_cl_disjoint_base
class SecondPriceAuction:
    """One second-price auction with quality scores."""

    def __init__(self, reserve_price: _ClFloat = 0.10, increment: _ClFloat = 0.01) -> None: ...
    @property
    def reserve_price(self) -> float: ...
    @property
    def increment(self) -> float: ...
    def run(self, bids: _ClIterable[Bid]) -> tuple[Bid, float] | None: ...

@_cl_disjoint_base
class FirstPriceAuction:
    """One first-price auction with quality scores."""

    def __init__(self, reserve_price: _ClFloat = 0.10) -> None: ...
    @property
    def reserve_price(self) -> float: ...
    def run(self, bids: _ClIterable[Bid]) -> tuple[Bid, float] | None: ...

# --- pacing/*.pxi ---
# Cores of rtbcore.pacing (see there for the semantics).

from collections.abc import Callable as _PcCallable  # noqa: E402
from typing import Any as _PcAny  # noqa: E402

import numpy as _pc_np  # noqa: E402
import numpy.typing as _pc_npt  # noqa: E402
from typing_extensions import disjoint_base as _pc_disjoint_base  # noqa: E402

@_pc_disjoint_base
class _Pacer:
    def __init__(
        self,
        total: float = 86_400.0,
        clock: _PcCallable[[], float] | None = None,
        start: float | None = None,
    ) -> None: ...
    @property
    def total(self) -> float: ...
    @property
    def start(self) -> float: ...
    @property
    def calendar(self) -> _PcAny: ...
    @property
    def clock(self) -> _PcCallable[[], float]: ...
    def elapsed(self) -> float: ...
    def rollover(self, start: float | None = None, total: float | None = None) -> None: ...
    def _set_calendar(self, calendar: _PcAny) -> None: ...
    def _period_state(self) -> dict[str, float]: ...
    def _set_period_state(self, total: float, start: float, last_clock: float) -> None: ...
    def should_bid(
        self,
        spent: _pc_npt.ArrayLike,
        budget: _pc_npt.ArrayLike,
        cost: _pc_npt.ArrayLike,
        elapsed: _pc_npt.ArrayLike | None = None,
        total: _pc_npt.ArrayLike | None = None,
    ) -> _PcAny: ...

@_pc_disjoint_base
class _MultiplierPacer(_Pacer):
    def multiplier(
        self,
        spent: _pc_npt.ArrayLike,
        budget: _pc_npt.ArrayLike,
        elapsed: _pc_npt.ArrayLike | None = None,
        total: _pc_npt.ArrayLike | None = None,
    ) -> _PcAny: ...

class _LinearPacer(_MultiplierPacer): ...
class _TieredPacer(_MultiplierPacer): ...

@_pc_disjoint_base
class _ThrottlingPacer(_Pacer):
    def __init__(
        self,
        total: float = 86_400.0,
        clock: _PcCallable[[], float] | None = None,
        start: float | None = None,
        seed: int = 0,
    ) -> None: ...
    def bid_probability(
        self,
        spent: _pc_npt.ArrayLike,
        budget: _pc_npt.ArrayLike,
        elapsed: _pc_npt.ArrayLike | None = None,
        total: _pc_npt.ArrayLike | None = None,
    ) -> _PcAny: ...
    @property
    def rng_state(self) -> int: ...
    @rng_state.setter
    def rng_state(self, value: int) -> None: ...

@_pc_disjoint_base
class _PIDPacer(_Pacer):
    def __init__(
        self,
        budget: _pc_npt.ArrayLike,
        total: float = 86_400.0,
        clock: _PcCallable[[], float] | None = None,
        start: float | None = None,
        *,
        kp: float = 10.0,
        ki: float = 50.0,
        kd: float = 0.0,
        output: str = "multiplier",
        base: float | None = None,
        lo: float | None = None,
        hi: float | None = None,
        profile: _pc_npt.ArrayLike | None = None,
        seed: int = 0,
    ) -> None: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def budget(self) -> _pc_npt.NDArray[_pc_np.float64]: ...
    @property
    def integral(self) -> _pc_npt.NDArray[_pc_np.float64]: ...
    @property
    def derivative(self) -> _pc_npt.NDArray[_pc_np.float64]: ...
    @property
    def last_error(self) -> _pc_npt.NDArray[_pc_np.float64]: ...
    @property
    def last_update(self) -> _pc_npt.NDArray[_pc_np.float64]: ...
    @property
    def updates(self) -> int: ...
    @property
    def gains(self) -> dict[str, float]: ...
    @property
    def output_kind(self) -> str: ...
    @property
    def cumulative_profile(self) -> _pc_npt.NDArray[_pc_np.float64]: ...
    def target(
        self, elapsed: _pc_npt.ArrayLike | None = None, total: float | None = None
    ) -> _PcAny: ...
    def output(
        self,
        spent: _pc_npt.ArrayLike,
        budget: _pc_npt.ArrayLike | None = None,
        elapsed: _pc_npt.ArrayLike | None = None,
        total: _pc_npt.ArrayLike | None = None,
    ) -> _PcAny: ...
    def multiplier(
        self,
        spent: _pc_npt.ArrayLike,
        budget: _pc_npt.ArrayLike | None = None,
        elapsed: _pc_npt.ArrayLike | None = None,
        total: _pc_npt.ArrayLike | None = None,
    ) -> _PcAny: ...
    def update(
        self, spent: _pc_npt.ArrayLike, elapsed: _pc_npt.ArrayLike | None = None
    ) -> None: ...
    def set_budget(self, budget: _pc_npt.ArrayLike) -> None: ...
    def rollover(  # type: ignore[override]
        self,
        start: float | None = None,
        total: float | None = None,
        budget: _pc_npt.ArrayLike | None = None,
    ) -> None: ...
    def _controller_state(self) -> dict[str, _PcAny]: ...
    def _set_controller_state(
        self,
        integral: _pc_npt.ArrayLike,
        derivative: _pc_npt.ArrayLike,
        last_error: _pc_npt.ArrayLike,
        last_update: _pc_npt.ArrayLike,
        updates: int,
        rng: int,
    ) -> None: ...
    def reset(self) -> None: ...

def _pacing_value_bid(
    p_ctr: _pc_npt.ArrayLike,
    p_cvr: _pc_npt.ArrayLike,
    value: _pc_npt.ArrayLike,
    target_roi: _pc_npt.ArrayLike,
    multiplier: _pc_npt.ArrayLike,
    min_bid: float,
    max_bid: float,
) -> _PcAny: ...

# --- credit.pxi ---

from collections.abc import Callable as _CrCallable
from typing import Any as _CrAny
from typing import SupportsIndex as _CrIndex

import numpy as _cr_np
import numpy.typing as _cr_npt
from typing_extensions import disjoint_base as _cr_disjoint_base

@_cr_disjoint_base
class _CreditPool:
    """Core of rtbcore.credit.CreditPool (see there)."""

    def __init__(
        self,
        initial: float,
        cap: float,
        bid_cost: float = 1,
        win_credit: float = 10,
        loss_credit: float = 0,
        bump: float = 100,
        bump_every: float = 60.0,
        clock: _CrCallable[[], float] | None = None,
    ) -> None: ...
    def try_bid(self) -> bool: ...
    def try_bids(self, n: _CrIndex) -> int: ...
    def try_bid_block(
        self, costs: _cr_npt.ArrayLike, out: _cr_npt.NDArray[_cr_np.bool_] | None = None
    ) -> _cr_npt.NDArray[_cr_np.bool_]: ...
    def record_win(self, n: _CrIndex = 1) -> None: ...
    def record_loss(self, n: _CrIndex = 1) -> None: ...
    def tick(self, now: float | None = None) -> int: ...
    @property
    def credits(self) -> float: ...
    @property
    def cap(self) -> float: ...
    @property
    def bid_cost(self) -> float: ...
    @property
    def win_credit(self) -> float: ...
    @property
    def loss_credit(self) -> float: ...
    @property
    def bump(self) -> float: ...
    @property
    def bump_every(self) -> float: ...
    @property
    def next_bump_at(self) -> float: ...
    @property
    def last_tick(self) -> float: ...
    @property
    def clock(self) -> _CrCallable[[], float]: ...
    def stats(self) -> dict[str, int | float]: ...
    def _get_state(self) -> dict[str, int | float]: ...
    def _set_state(self, st: dict[str, _CrAny], shift: float) -> None: ...

# --- ledger.pxi ---

from collections.abc import Callable as _DlCallable
from collections.abc import Hashable as _DlHashable
from collections.abc import Mapping as _DlMapping

import numpy as _dl_np
import numpy.typing as _dl_npt
from typing_extensions import disjoint_base as _dl_disjoint_base

def _ledger_units(value: float, name: str) -> int: ...
@_dl_disjoint_base
class _SpendLedger:
    """Core of the local accounting of rtbcore.distributed.SharedBudget."""

    def __init__(
        self, index: _DlMapping[_DlHashable, int], wake: _DlCallable[[], object] | None = None
    ) -> None: ...
    def try_spend(self, campaign: _DlHashable, amount: float) -> bool: ...
    def try_spend_slots(
        self,
        slots: _dl_npt.ArrayLike,
        amounts: _dl_npt.ArrayLike,
        out: _dl_npt.NDArray[_dl_np.bool_] | None = None,
    ) -> _dl_npt.NDArray[_dl_np.bool_]: ...
    def credit(self, slot: int, units: int) -> None: ...
    def drain(self, slot: int) -> int: ...
    def set_low(self, slot: int, units: int) -> None: ...
    def wanting(self) -> list[int]: ...
    def avail_units(self, slot: int) -> int: ...
    def spent_units(self, slot: int) -> int: ...
    @property
    def granted(self) -> int: ...
    @property
    def refused(self) -> int: ...

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

# --- shader.pxi ---
# The shader's request path (rtbcore.shading.BidShader subclasses _ShaderCore).

from typing import Any as _SdAny  # noqa: E402
from typing import final as _sd_final  # noqa: E402

from typing_extensions import disjoint_base as _sd_disjoint_base  # noqa: E402

@_sd_final
class _ShadingFit:
    def __init__(
        self,
        F: npt.NDArray[np.float64],
        seg: npt.NDArray[np.intp],
        p: npt.NDArray[np.float64] | None,
        h: float,
        vstep: float,
        n_obs: int,
        exact: bool,
    ) -> None: ...
    @property
    def F(self) -> npt.NDArray[np.float64]: ...
    @property
    def seg(self) -> npt.NDArray[np.intp]: ...
    @property
    def p(self) -> npt.NDArray[np.float64] | None: ...
    @property
    def n_obs(self) -> int: ...
    @property
    def exact(self) -> bool: ...
    @property
    def h(self) -> float: ...
    @property
    def vstep(self) -> float: ...

@_sd_disjoint_base
class _ShaderCore:
    n_explored: int
    n_no_bid: int
    def _set_rule(
        self,
        landscape: _SdAny,
        floor: float,
        ceiling: float,
        explore: float,
        explore_width: float,
        shade: bool,
        seed: int | None,
    ) -> None: ...
    @property
    def landscape(self) -> _SdAny: ...
    @property
    def floor(self) -> float: ...
    @property
    def ceiling(self) -> float: ...
    @property
    def explore(self) -> float: ...
    @property
    def explore_width(self) -> float: ...
    @property
    def rng_state(self) -> int: ...
    def bid(self, values: _SdAny) -> _SdAny: ...
