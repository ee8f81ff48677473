"""Bad input to every public constructor and method of pacing, credit and shading raises
rtbcore.errors.InvalidInputError (a ValueError) and nothing else: no bare TypeError, ValueError
or OverflowError from a conversion, no numpy warning, no crash.

Each case is a valid call; every argument in turn is replaced by each bad value. A bad value may
be acceptable for some argument (None for an optional one, 0 for a count): then the call may
succeed; what may never happen is another exception class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from rtbcore import (
    AdaptivePacer,
    BidLandscape,
    BidShader,
    CreditPool,
    LinearPacer,
    PIDPacer,
    ThompsonSampler,
    ThrottlingPacer,
    TieredPacer,
    learn_profile,
    value_bid,
)
from rtbcore.errors import InvalidInputError


def _clock() -> float:
    return 100.0


BAD_VALUES: list[tuple[str, Any]] = [
    ("str", "x"),
    ("numeric str", "1.5"),
    ("bytes", b"x"),
    ("None", None),
    ("bool", True),
    ("complex", 1j),
    ("object", object()),
    ("dict", {}),
    ("nan", math.nan),
    ("inf", math.inf),
    ("-inf", -math.inf),
    ("-1", -1),
    ("-1.0", -1.0),
    ("0", 0),
    ("huge int", 10**400),
    ("2**64+5", 2**64 + 5),
    ("2**53+1", 2**53 + 1),
    ("-2**63-1", -(2**63) - 1),
    ("tiny", 1e-300),
    ("2-D", np.ones((2, 2))),
    ("empty", np.array([])),
    ("ragged", [[1.0], [1.0, 2.0]]),
    ("str array", np.array(["a"])),
    ("bool array", np.array([True, False])),
    ("mixed list", [1.0, "a"]),
    ("nan array", np.array([np.nan, 1.0])),
    ("negative array", np.array([-1.0, 1.0])),
    ("length 3", np.array([1.0, 2.0, 3.0])),
    ("int64 array beyond 2**53", np.array([2**62], dtype=np.int64)),
    ("uint64 max", np.array([2**64 - 1], dtype=np.uint64)),
    ("complex array", np.array([1j])),
    ("clock of str", lambda: "x"),
    ("clock of huge int", lambda: 10**400),
    ("clock of nan", lambda: math.nan),
]


@dataclass
class Case:
    name: str
    make: Callable[[], Any]
    call: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


def _landscape() -> BidLandscape:
    land = BidLandscape(bins=16)
    land.observe([0.2, 0.5, 0.7], [False, True, True])
    return land


def _pool() -> CreditPool:
    return CreditPool(10, 100, clock=_clock)


ARR2 = np.array([10.0, 20.0])
BUDGET2 = np.array([100.0, 200.0])
PROFILE = np.ones(24)

CASES = [
    # ---- pacing
    Case("LinearPacer()", lambda: None, lambda _, **kw: LinearPacer(**kw),
         dict(total=86_400.0, clock=_clock, start=0.0)),
    Case("TieredPacer()", lambda: None, lambda _, **kw: TieredPacer(**kw),
         dict(total=86_400.0, clock=_clock, start=0.0)),
    Case("ThrottlingPacer()", lambda: None, lambda _, **kw: ThrottlingPacer(**kw),
         dict(total=86_400.0, clock=_clock, start=0.0, seed=3)),
    Case("PIDPacer()", lambda: None, lambda _, **kw: PIDPacer(**kw),
         dict(budget=BUDGET2, total=86_400.0, clock=_clock, start=0.0, kp=1.0, ki=2.0, kd=0.5,
              output="participation", base=0.5, lo=0.1, hi=0.9, profile=PROFILE, seed=3)),
    Case("AdaptivePacer()", lambda: None, lambda _, **kw: AdaptivePacer(**kw),
         dict(budget=BUDGET2, profile=PROFILE, total=86_400.0, clock=_clock, start=0.0)),
    Case("AdaptivePacer.from_history()", lambda: None,
         lambda _, **kw: AdaptivePacer.from_history(**kw),
         dict(budget=100.0, history=np.ones((2, 1440)), buckets=24)),
    Case("learn_profile()", lambda: None, lambda _, **kw: learn_profile(**kw),
         dict(history=np.ones((2, 24)), buckets=24)),
    Case("value_bid()", lambda: None, lambda _, **kw: value_bid(**kw),
         dict(p_ctr=0.1, p_cvr=0.2, value=50.0, target_roi=1.5, multiplier=1.0, min_bid=0.1,
              max_bid=5.0)),
    *[
        Case(f"{cls.__name__}.{meth}()", lambda cls=cls: cls(clock=_clock, start=0.0),
             lambda p, meth=meth, **kw: getattr(p, meth)(**kw), kw)
        for cls in (LinearPacer, TieredPacer, ThrottlingPacer)
        for meth, kw in (
            ("should_bid", dict(spent=ARR2, budget=BUDGET2, cost=1.0, elapsed=50.0, total=100.0)),
            ("should_bid", dict(spent=10.0, budget=100.0, cost=1.0)),
        )
    ],
    *[
        Case(f"{cls.__name__}.multiplier()", lambda cls=cls: cls(clock=_clock, start=0.0),
             lambda p, **kw: p.multiplier(**kw),
             dict(spent=10.0, budget=100.0, elapsed=50.0, total=100.0))
        for cls in (LinearPacer, TieredPacer)
    ],
    Case("ThrottlingPacer.bid_probability()", lambda: ThrottlingPacer(clock=_clock, start=0.0),
         lambda p, **kw: p.bid_probability(**kw),
         dict(spent=ARR2, budget=BUDGET2, elapsed=50.0, total=100.0)),
    *[
        Case(f"PIDPacer({shape}).{meth}()",
             lambda b=b: PIDPacer(b, clock=_clock, start=0.0, output="participation", seed=1),
             lambda p, meth=meth, **kw: getattr(p, meth)(**kw), kw)
        for shape, b, spent in (("scalar", 100.0, 10.0), ("array", BUDGET2, ARR2))
        for meth, kw in (
            ("output", dict(spent=spent, budget=b, elapsed=50.0, total=100.0)),
            ("multiplier", dict(spent=spent, budget=b, elapsed=50.0, total=100.0)),
            ("should_bid", dict(spent=spent, budget=b, cost=1.0, elapsed=50.0, total=100.0)),
            ("update", dict(spent=spent, elapsed=50.0)),
            ("target", dict(elapsed=50.0, total=100.0)),
        )
    ],
    # ---- credit
    Case("CreditPool()", lambda: None, lambda _, **kw: CreditPool(**kw),
         dict(initial=10, cap=100, bid_cost=1, win_credit=10, loss_credit=0.5, bump=100,
              bump_every=60.0, clock=_clock)),
    Case("CreditPool.try_bids()", _pool, lambda p, **kw: p.try_bids(**kw), dict(n=3)),
    Case("CreditPool.record_win()", _pool, lambda p, **kw: p.record_win(**kw), dict(n=3)),
    Case("CreditPool.record_loss()", _pool, lambda p, **kw: p.record_loss(**kw), dict(n=3)),
    Case("CreditPool.tick()", _pool, lambda p, **kw: p.tick(**kw), dict(now=200.0)),
    Case("CreditPool.try_bid_block()", _pool, lambda p, **kw: p.try_bid_block(**kw),
         dict(costs=np.array([1.0, 2.0]), out=np.zeros(2, dtype=np.bool_))),
    # ---- shading
    Case("BidLandscape()", lambda: None, lambda _, **kw: BidLandscape(**kw),
         dict(max_bid=2.0, bins=16, estimator="empirical", smoothing=0.01, max_iter=100,
              tol=1e-6)),
    Case("BidLandscape.observe()", _landscape, lambda land, **kw: land.observe(**kw),
         dict(bids=[0.3, 0.6], won=[True, False], price=[0.3, np.nan],
              min_to_win=[np.nan, 0.7])),
    Case("BidLandscape.win_probability()", _landscape,
         lambda land, **kw: land.win_probability(**kw), dict(bids=[0.3, 0.6])),
    Case("BidLandscape.expected_surplus()", _landscape,
         lambda land, **kw: land.expected_surplus(**kw), dict(values=[0.5, 0.9], bids=[0.3, 0.6])),
    Case("BidLandscape.optimal_bid()", _landscape, lambda land, **kw: land.optimal_bid(**kw),
         dict(values=[0.5, 0.9])),
    Case("BidShader()", _landscape, lambda land, **kw: BidShader(land, **kw),
         dict(floor=0.05, ceiling=0.95, explore=0.1, explore_width=0.2, seed=3)),
    Case("BidShader(landscape=)", _landscape, lambda land, **kw: BidShader(**kw),
         dict(landscape=_landscape())),
    Case("BidShader.bid()", lambda: BidShader(_landscape(), explore=0.5, seed=1),
         lambda s, **kw: s.bid(**kw), dict(values=[0.5, 0.9])),
    Case("BidShader.observe()", lambda: BidShader(_landscape(), seed=1),
         lambda s, **kw: s.observe(**kw), dict(bids=[0.3, 0.6], won=[True, False])),
    Case("ThompsonSampler()", lambda: None, lambda _, **kw: ThompsonSampler(**kw),
         dict(n_arms=3, alpha=1.0, beta=np.ones(3), seed=3)),
    Case("ThompsonSampler.select()", lambda: ThompsonSampler(3, seed=1),
         lambda t, **kw: t.select(**kw), dict(n=4)),
    Case("ThompsonSampler.update()", lambda: ThompsonSampler(3, seed=1),
         lambda t, **kw: t.update(**kw), dict(arms=[0, 2], rewards=[1.0, 0.0])),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_raises_the_library_error_and_nothing_else(case):
    case.call(case.make(), **case.kwargs)  # the valid call itself works
    leaks = []
    for arg in case.kwargs:
        for label, bad in BAD_VALUES:
            try:
                case.call(case.make(), **dict(case.kwargs, **{arg: bad}))
            except InvalidInputError:
                pass
            except Exception as exc:  # noqa: BLE001 - any other class is the failure reported
                leaks.append(f"{arg}={label}: {type(exc).__name__}: {exc}"[:200])
    assert not leaks, "\n".join(leaks)


# Values that are wrong for every numeric argument: each must be refused, not accepted.
NEVER_A_NUMBER = [("str", "x"), ("complex", 1j), ("object", object()), ("huge int", 10**400)]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_non_numbers_are_refused_by_every_numeric_argument(case):
    accepted = []
    for arg, good in case.kwargs.items():
        if isinstance(good, str | bool) or callable(good) or good is None:
            continue
        if isinstance(good, BidLandscape | np.ndarray | list) and arg in ("landscape", "out"):
            continue
        for label, bad in NEVER_A_NUMBER:
            try:
                case.call(case.make(), **dict(case.kwargs, **{arg: bad}))
            except InvalidInputError as exc:
                assert arg in str(exc) or arg == "history", (arg, str(exc))
            else:
                accepted.append(f"{arg}={label}")
    assert not accepted, accepted
