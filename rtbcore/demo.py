"""``rtbcore demo``: the main job. Each section shows one part of rtbcore on synthetic data."""

from __future__ import annotations

import argparse


def run_demo(args: argparse.Namespace) -> int:
    print(f"rtbcore demo (seed {args.seed})")
    # --- section: clearing (issue: foundation and clearing) ---
    from rtbcore.clearing import demo_section as clearing_demo

    clearing_demo(args)

    # --- section: streaming engine (issue: engine) ---
    from rtbcore.engine import demo_section as engine_demo

    engine_demo(args)

    # --- section: pacing (issue: pacing) ---
    from rtbcore.pacing_sim import demo_section as pacing_demo

    pacing_demo(args)

    # --- section: credit pool (issue: credit/shading, credit part) ---
    from rtbcore.credit import demo_section as credit_demo

    credit_demo(args)

    # --- section: bid shading (issue: credit/shading, shading part) ---
    from rtbcore.shading import demo_section as shading_demo

    shading_demo(args)

    return 0
