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

# --- dynamic.rs ---
# The dynamic pricing auction's kernel, private to rtbcore.dynamic.

__all__ += ["clear_dynamic"]

def clear_dynamic(
    offsets: _cl_npt.NDArray[_cl_np.int64],
    prices: _cl_npt.NDArray[_cl_np.float64],
    base_price: float | _cl_npt.NDArray[_cl_np.float64],
    times: _cl_npt.NDArray[_cl_np.float64],
    supply_limit: int,
    demand: _cl_npt.NDArray[_cl_np.float64],
    time_decay: float,
    duration: float,
    raise_invalid: bool,
    units: _cl_npt.NDArray[_cl_np.int64],
    revenue: _cl_npt.NDArray[_cl_np.float64],
    paid: _cl_npt.NDArray[_cl_np.float64],
    loss_reason: _cl_npt.NDArray[_cl_np.int32],
) -> int: ...

# --- queue.rs ---

from typing import final as _st_final

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base as _st_disjoint_base

__all__ += ["BidQueue", "BidRing", "RingReader"]

@_st_disjoint_base
class BidQueue:
    def __new__(cls, capacity: int = 65536) -> BidQueue: ...
    def push(
        self,
        auction_id: int,
        bidder_id: int,
        price: float,
        quality: float = 1.0,
        kind: int = 0,
        timestamp_ns: int = 0,
    ) -> bool: ...
    def _push_bytes(self, buf: npt.NDArray[np.uint8]) -> int: ...
    def _pop_into(self, out: npt.NDArray[np.uint8]) -> int: ...
    def __len__(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def refused(self) -> int: ...
    def close(self) -> None: ...

# --- ring.rs ---

@_st_final
class BidRing:
    @staticmethod
    def _create(
        path: str,
        capacity: int,
        record_size: int,
        mode: str,
        max_readers: int,
        record_type: str | None = None,
    ) -> BidRing: ...
    @staticmethod
    def _open(
        path: str, record_size: int | None = None, record_type: str | None = None
    ) -> BidRing: ...
    def _records(self) -> npt.NDArray[np.uint8]: ...
    def check(self) -> None: ...
    @property
    def record_type(self) -> str: ...
    def append(
        self,
        auction_id: int,
        bidder_id: int,
        price: float,
        quality: float = 1.0,
        kind: int = 0,
        timestamp_ns: int = 0,
    ) -> bool: ...
    def _append_bytes(self, buf: npt.NDArray[np.uint8], validate: bool) -> int: ...
    def reader(
        self, name: str, start: str = "oldest", abandon_after: float = 2.0
    ) -> RingReader: ...
    def readers(self) -> list[tuple[str, int]]: ...
    def remove_reader(self, name: str) -> bool: ...
    def wait_for_space(self, n: int = 1, timeout: float = 1.0) -> bool: ...
    def abandon_incomplete(self) -> int: ...
    def _reserve_and_die(self, n: int) -> int: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def path(self) -> str: ...
    @property
    def capacity(self) -> int: ...
    @property
    def record_size(self) -> int: ...
    @property
    def records_offset(self) -> int: ...
    @property
    def mode(self) -> str: ...
    @property
    def max_readers(self) -> int: ...
    @property
    def tail(self) -> int: ...
    @property
    def oldest(self) -> int: ...
    @property
    def abandoned(self) -> int: ...
    @property
    def lost_writes(self) -> int: ...

@_st_final
class RingReader:
    def _read(self, max_n: int, timeout: float = 0.0) -> tuple[int, int]: ...
    def read_one(
        self, timeout: float = 0.0
    ) -> tuple[int, int, float, float, int, int] | None: ...
    def _read_into(
        self, out: npt.NDArray[np.uint8], timeout: float = 0.0
    ) -> tuple[int, int]: ...
    def _unread(self) -> None: ...
    def commit(self) -> None: ...
    def replay(self, from_seq: int) -> None: ...
    def wait(self, timeout: float = 1.0) -> bool: ...
    @property
    def name(self) -> str: ...
    @property
    def position(self) -> int: ...
    @property
    def acknowledged(self) -> int: ...
    @property
    def lag(self) -> int: ...
    @property
    def abandon_after(self) -> float: ...

# --- engine.rs ---

from typing import Any as _Any  # noqa: E402
from typing import final as _final  # noqa: E402

import numpy as _np  # noqa: E402
import numpy.typing as _npt  # noqa: E402

__all__ += ["_AuctionEngine", "_EventLog"]

@_final
class _AuctionEngine:
    """The Rust auction engine; use rtbcore.AuctionEngine."""

    def __new__(
        cls,
        workers: int,
        pin: bool,
        mechanism: str,
        reserve: float,
        increment: float,
        tmax_ns: int,
        capacity: int,
        slot_ctrs: list[float] | None = None,
        event_log: str | None = None,
        event_log_capacity: int = 1048576,
        rejected_capacity: int | None = None,
        outcome_capacity: int | None = None,
    ) -> _AuctionEngine: ...
    def open(
        self,
        auction_ids: _npt.NDArray[_np.int64],
        reserve: _npt.NDArray[_np.float64] | None = None,
        tmax_ns: _npt.NDArray[_np.uint64] | None = None,
        expected_bids: _npt.NDArray[_np.uint32] | None = None,
    ) -> int: ...
    def submit(
        self,
        auction_ids: _npt.NDArray[_np.int64],
        bidder_ids: _npt.NDArray[_np.int64],
        prices: _npt.NDArray[_np.float64],
        quality: _npt.NDArray[_np.float64] | None = None,
        kinds: _npt.NDArray[_np.uint8] | None = None,
        timeout_ms: float | None = None,
    ) -> int | None: ...
    def submit_records(
        self, records: _npt.NDArray[_np.uint8], timeout_ms: float | None = None
    ) -> int | None: ...
    def submit_one(
        self, auction_id: int, bidder_id: int, price: float, quality: float, cancel: bool
    ) -> bool: ...
    def poll(self, max_n: int, timeout_ms: float, hold: list[_npt.NDArray[_Any]]) -> None: ...
    def poll_rejected(
        self, max_n: int, hold: list[_npt.NDArray[_Any]], dropped: list[int] | None = None
    ) -> None: ...
    def poll_outcomes(
        self, max_n: int, hold: list[_npt.NDArray[_Any]], dropped: list[int]
    ) -> None: ...
    def stats(self) -> dict[str, _Any]: ...
    def reset_latency(self) -> None: ...
    def attach_ring(self, path: str, reader: str, start_oldest: bool) -> None: ...
    @property
    def rows_per_auction(self) -> int: ...
    @property
    def rejected_capacity(self) -> int: ...
    @property
    def outcome_capacity(self) -> int | None: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...

@_final
class _EventLog:
    """A follower of an engine's event log; use rtbcore.EventLog."""

    def __new__(cls, path: str, reader: str, start_oldest: bool) -> _EventLog: ...
    def read(self, max_n: int, timeout_ms: float, hold: list[_npt.NDArray[_Any]]) -> None: ...
    def replay(self, seq: int) -> None: ...
    def commit(self) -> None: ...
    @property
    def position(self) -> int: ...
    @property
    def tail(self) -> int: ...
    @property
    def oldest(self) -> int: ...

# --- gateway.rs ---
# The exchange server; use rtbcore.exchange.Exchange.

__all__ += ["_Gateway"]

@_final
class _Gateway:
    """The running exchange server; use rtbcore.exchange.Exchange."""

    def __new__(
        cls, config_json: str, base_dir: str, dev_key: bool = False, threads: int = 2
    ) -> _Gateway: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def dev_key(self) -> str | None: ...
    @property
    def event_log_path(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def open_auction(
        self,
        auction_id: str = "",
        attributes: dict[str, str] | None = None,
        floor_micros: int = 0,
        tmax_s: float | None = None,
        expected_bids: int = 0,
    ) -> tuple[str, float]: ...
    def next_result(self, timeout_s: float = 0.0) -> dict[str, _Any] | None: ...
    def metrics_text(self) -> str: ...
    def auctions_open(self) -> int: ...
    def stop(self) -> None: ...

# --- floors.rs ---
# The exchange server's floor learner, private: tests hold it against rtbcore.FloorOptimizer.

__all__ += ["_FloorLearner"]

@_final
class _FloorLearner:
    def __new__(
        cls,
        n_keys: int,
        grid: _npt.NDArray[_np.float64],
        *,
        half_life: float,
        explore: float,
        explore_steps: int,
        min_fill: float,
        min_weight: float,
        initial: float,
        seed: int,
    ) -> _FloorLearner: ...
    def update(
        self,
        key: _npt.NDArray[_np.int64],
        floor: _npt.NDArray[_np.float64],
        price: _npt.NDArray[_np.float64],
        sold: _npt.NDArray[_np.bool_],
    ) -> None: ...
    def lookup(self, key: _npt.NDArray[_np.int64], explore: bool) -> _npt.NDArray[_np.float64]: ...
    def add_key(self) -> int: ...
    @property
    def floors(self) -> _npt.NDArray[_np.float64]: ...
