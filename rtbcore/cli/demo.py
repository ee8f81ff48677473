"""``rtbcore demo``: the main job. Each section shows one part of rtbcore on synthetic data."""

from __future__ import annotations

import argparse
import importlib

#: The sections in the order the demo runs them (modules of rtbcore.cli.sections).
SECTIONS = ("clearing", "engine", "exchange", "pacing", "credit", "shading")


def run_demo(args: argparse.Namespace) -> int:
    print(f"rtbcore demo (seed {args.seed})")
    for name in SECTIONS:
        importlib.import_module(f"rtbcore.cli.sections.{name}").run(args)
    return 0
