"""The synthetic floors week: its market, the hindsight policies' order, and the command."""

from __future__ import annotations

import numpy as np
import pytest

from rtbcore import InvalidInputError, replay
from rtbcore.cli import main
from rtbcore.sim.floors import hindsight_floors, market_week, simulate_floors


def test_market_week_shape():
    log, hidden = market_week(20_000, segments=6, seed=3)
    sizes = np.diff(log.batch.offsets)
    assert sizes.min() >= 2 and sizes.max() <= 20
    assert log.segments == 6 and np.all(np.diff(hidden["time"]) >= 0)
    assert np.all(log.batch.prices > 0)
    with pytest.raises(InvalidInputError, match="^auctions"):
        market_week(0)


def test_hindsight_floors_are_the_best_on_the_log():
    log, _ = market_week(20_000, segments=4, seed=4)
    static, per_segment = hindsight_floors(log, np.linspace(0, 3, 31))
    best = replay(log, static).revenue
    for f in np.linspace(0, 3, 31):
        assert replay(log, float(f)).revenue <= best * (1 + 1e-12)
    oracle = replay(log, per_segment)
    assert oracle.revenue >= best
    for s in range(4):
        alt = per_segment.copy()
        alt[s] = per_segment[s] + 0.1
        assert replay(log, alt).revenue <= oracle.revenue * (1 + 1e-12)


def test_simulation_table_and_order():
    r = simulate_floors(auctions=40_000, segments=8, seed=1)
    rows = {x["policy"]: x for x in r.rows()}
    assert rows["no floor"]["fill_rate"] == 1.0
    rev = {k: v["revenue"] for k, v in rows.items()}
    assert rev["oracle"] >= rev["best static"] >= rev["no floor"]
    assert rows["online"]["revenue"] > rows["no floor"]["revenue"]
    assert rows["online, fill >= 95%"]["fill_rate"] >= 0.95
    assert "vs no floor" in r.summary()


def test_simulate_floors_command(tmp_path, capsys):
    png, out_csv = tmp_path / "f.png", tmp_path / "f.csv"
    rc = main(["simulate", "floors", "--auctions", "20000", "--segments", "4", "--no-progress",
               "--png", str(png), "--csv", str(out_csv)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "online, price only" in text and png.stat().st_size > 0
    assert out_csv.read_text().startswith("policy,revenue,vs_no_floor")
