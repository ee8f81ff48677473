"""The pacing day: zero overspend for every pacer, the SLO for the feedback pacers, metrics that
separate simple from feedback pacers, the clearing function, the CLI and the outputs."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtbcore import PACERS, simulate_pacing
from rtbcore.cli import main
from rtbcore.errors import InvalidInputError
from rtbcore.sim.pacing import clear_tick, clear_tick_numpy

from oracles import oracle_second_price_segments

SIMPLE = ("unpaced", "linear", "tiered", "throttling")
FEEDBACK = ("pid", "adaptive")


@pytest.fixture(scope="module")
def day():
    # 200 campaigns, the default 30 s rounds: ~5 s for the six pacers
    return simulate_pacing(campaigns=200, ticks=2880, seed=0)


def test_no_pacer_overspends(day):
    assert set(day.pacers) == set(PACERS)
    for p in day.pacers:
        assert day.metrics[p]["overspend"] == 0.0, p
        assert day.metrics[p]["overspent"] == 0.0, p
        assert np.all(day.final_spend[p] <= day.budget), p
        # spend only grows and never passes 1 on any snapshot
        c = day.curves[p]
        assert np.all(np.diff(c, axis=0) >= 0) and c.max() <= 1.0, p


def test_the_feedback_pacers_reach_the_slo(day):
    for p in FEEDBACK:
        m = day.metrics[p]
        assert m["slo"] >= 0.95, (p, m)
        assert m["slo_paced"] >= 0.95, (p, m)
        assert m["exhaust_h"] > 23.0 and m["reach"] > 0.95, (p, m)
    assert day.best() in FEEDBACK


def test_simple_pacers_land_on_budget_but_run_out_early(day):
    # The issue's SLO alone does not separate them (the hard cap lands everyone on budget) ...
    for p in SIMPLE:
        assert day.metrics[p]["slo"] >= 0.95, p
    # ... when the budget runs out does: before 20:00 for most campaigns, missing the evening.
    for p in SIMPLE:
        m = day.metrics[p]
        assert m["slo_paced"] <= 0.05, (p, m)
        assert m["exhaust_h"] < 20.0 and m["exhausted_by_20h"] > 0.7, (p, m)
        assert m["reach"] < 0.75, (p, m)
        assert m["last4h"] < 0.05, (p, m)
    # linear/tiered multipliers slow the spend a little: later than bidding unpaced
    assert day.metrics["linear"]["exhaust_h"] > day.metrics["unpaced"]["exhaust_h"]


def test_hourly_deviation_orders_the_pacers(day):
    dev = {p: day.metrics[p]["hourly_dev"] for p in day.pacers}
    assert dev["adaptive"] < dev["pid"] < min(dev[p] for p in SIMPLE)
    assert dev["adaptive"] < 3.0
    # the adaptive pacer spends the evening like the traffic does; the linear PID less so
    share = day.params["traffic_last4h"]
    assert abs(day.metrics["adaptive"]["last4h"] - share) < 0.03
    assert day.metrics["pid"]["last4h"] < share - 0.05


def test_the_setup_is_what_the_issue_asks(day):
    # unpaced bidding exhausts budgets well before the day ends
    assert day.params["unpaced_exhaust_h"] < 19.0
    # budgets spread over about two orders of magnitude (158x with 1,000 campaigns, seed 0)
    assert day.budget.max() / day.budget.min() > 50
    # traffic is shaped: the evening peak is several times the night trough
    rate = np.diff(day.traffic_share)
    assert rate.max() > 4 * rate.min()


def test_same_seed_same_day_other_seed_other_day():
    kw = dict(campaigns=30, ticks=288, pacers=("throttling", "adaptive"))
    a, b = simulate_pacing(seed=4, **kw), simulate_pacing(seed=4, **kw)
    c = simulate_pacing(seed=5, **kw)
    for p in a.pacers:
        np.testing.assert_array_equal(a.final_spend[p], b.final_spend[p])
        np.testing.assert_array_equal(a.curves[p], b.curves[p])
    assert not np.array_equal(a.budget, c.budget)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(campaigns=0), "campaigns"),
        (dict(ticks=10), "ticks"),
        (dict(seed=-1), "seed"),
        (dict(pacers=("linear", "magic")), "unknown pacer 'magic'"),
        (dict(total=math.nan), "total"),
        (dict(reserve=-1.0), "reserve"),
        (dict(campaigns=10, segments=11), "segments"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        simulate_pacing(**kwargs)


# ---- clearing ------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0, 3.5, math.nan, -1.0])
                      | st.floats(0.0, 10.0), max_size=6), max_size=8),
    st.sampled_from([0.0, 0.75, 1.0, 2.5]),
)
def test_clearing_matches_a_brute_force_second_price(segments, reserve):
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in segments])]).astype(np.int64)
    prices = np.array([p for s in segments for p in s], dtype=np.float64)
    want_w, want_p = oracle_second_price_segments(offsets.tolist(), prices.tolist(), reserve)
    for clear in (clear_tick_numpy, clear_tick):
        w, p = clear(offsets, prices, reserve)
        assert w.tolist() == want_w
        assert p.tolist() == want_p


# ---- outputs, CLI, demo ------------------------------------------------------------------------


def test_csv_png_and_cli(tmp_path, capsys):
    csv, png = tmp_path / "pacing.csv", tmp_path / "pacing.png"
    rc = main(["simulate", "pacing", "--campaigns", "40", "--ticks", "288", "--seed", "2",
               "--csv", str(csv), "--png", str(png), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    for p in PACERS:
        assert p in out
    assert "within ±5% of budget" in out and "best:" in out
    head = csv.read_text().splitlines()
    assert head[0] == "hour,traffic_share," + ",".join(f"{p}_median" for p in PACERS)
    assert len(head) == 1 + 97 + 1 + 1 + len(PACERS)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_bar_changes_nothing():
    kw = dict(campaigns=20, ticks=96, pacers=("pid",), seed=3)
    a, b = simulate_pacing(progress=True, **kw), simulate_pacing(progress=False, **kw)
    np.testing.assert_array_equal(a.final_spend["pid"], b.final_spend["pid"])


def test_demo_section_runs(capsys, monkeypatch):
    import rtbcore.cli.sections.pacing as section

    seen = {}
    real = section.simulate_pacing

    def small(**kw):
        seen.update(kw)
        return real(**{**kw, "campaigns": 20, "ticks": 96})

    monkeypatch.setattr(section, "simulate_pacing", small)
    section.run(argparse.Namespace(quick=True, seed=7))
    assert seen["campaigns"] == 200 and seen["seed"] == 7
    assert "pacing day" in capsys.readouterr().out


def test_the_day_is_the_same_with_the_numpy_clearing(monkeypatch):
    import rtbcore.sim.pacing as ps

    kw = dict(campaigns=40, ticks=288, seed=6, pacers=("linear", "adaptive"))
    rust = simulate_pacing(**kw)
    monkeypatch.setattr(ps, "clear_tick", clear_tick_numpy)
    numpy_day = ps.simulate_pacing(**kw)
    for p in rust.pacers:
        np.testing.assert_array_equal(rust.final_spend[p], numpy_day.final_spend[p])
    np.testing.assert_array_equal(rust.budget, numpy_day.budget)
