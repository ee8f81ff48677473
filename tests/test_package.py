"""The package installs, imports and exposes its public API; errors subclass the stdlib."""

import ast
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import rtbcore
from rtbcore import errors


def test_public_names_resolve():
    for name in rtbcore.__all__:
        assert hasattr(rtbcore, name), name


def test_native_modules_import():
    import _rtbcore

    import rtbcore._fastpath  # noqa: F401

    assert _rtbcore.__version__ == rtbcore.__version__


def test_errors_subclass_stdlib():
    assert issubclass(errors.InvalidBidError, ValueError)
    assert issubclass(errors.QueueFull, BufferError)
    assert issubclass(errors.RingOverrun, LookupError)
    e = errors.RingOverrun("lapped", 5, 12)
    assert (e.lost, e.next_seq) == (5, 12)


def test_cli_help_runs(tmp_path):
    # cwd elsewhere: from the repo root, `-m` would import the source tree, which has no
    # compiled rtbcore._fastpath, instead of the installed package.
    out = subprocess.run(
        [sys.executable, "-m", "rtbcore.cli", "--help"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    assert "demo" in out.stdout


# ---- layout: no import cycles, no leaked names, heavy dependencies on demand ------------------

PACKAGE = Path(rtbcore.__file__).parent

#: A module may import one that imports it back only through this compatibility path:
#: rtbcore.shading resolves the simulation names that moved to rtbcore.sim.shading on first use.
LAZY_BACK_EDGES = {("rtbcore.shading", "rtbcore.sim.shading")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


# compiled submodules (rtbcore._fastpath): importable, with no Python imports of their own
NATIVE = {f"rtbcore.{p.name.split('.')[0]}" for p in PACKAGE.glob("*.so")}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The rtbcore modules ``name`` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1],
                                 *([base] if base else [])])
            # `from pkg import sub` imports the submodule; `from mod import name` the module
            known = modules.keys() | NATIVE
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_import_cycle_among_rtbcore_modules():
    modules = _modules()
    assert {"rtbcore.cli", "rtbcore.sim.credit", "rtbcore.shading"} <= set(modules)
    graph = {m: _imports(p, m, modules) for m, p in modules.items()}
    for a, b in LAZY_BACK_EDGES:
        graph[b].discard(a)
    # The package root re-exports every area; a submodule importing it back is a cycle too.
    assert _cycles(graph) == []


def test_layers_library_then_simulations_then_the_command():
    modules = _modules()
    for m, p in modules.items():
        deps = _imports(p, m, modules)
        if not m.startswith("rtbcore.cli"):
            assert not {d for d in deps if d.startswith("rtbcore.cli")}, m
        if m != "rtbcore" and not m.startswith(("rtbcore.sim", "rtbcore.cli")):
            upward = {d for d in deps if d.startswith("rtbcore.sim")}
            assert upward <= {b for a, b in LAZY_BACK_EDGES if a == m}, (m, upward)


@pytest.mark.parametrize("module", sorted(set(_modules()) - {"rtbcore.cli.__main__"}))
def test_each_module_imports_alone_in_a_fresh_interpreter(module, tmp_path):
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=tmp_path,
                   capture_output=True, timeout=120)


def test_import_rtbcore_leaves_plotting_progress_and_fitting_packages_unloaded(tmp_path):
    code = (
        "import sys, rtbcore, rtbcore.sim\n"
        "heavy = {'matplotlib', 'tqdm', 'scipy', 'hdrh', 'redis'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_dir_and_all_list_only_the_public_api():
    public_modules = {"errors", "records", "clearing", "streaming", "engine", "pacing",
                      "credit", "shading", "thompson", "periods", "budget", "ids",
                      "floors", "dynamic", "adjust", "sim", "distributed", "exchange",
                      "exchange_floors", "client"}
    assert len(rtbcore.__all__) == len(set(rtbcore.__all__))
    assert all(not n.startswith("_") or n == "__version__" for n in rtbcore.__all__)
    assert not public_modules & set(rtbcore.__all__)
    assert dir(rtbcore) == sorted({*rtbcore.__all__, *public_modules})
    assert "annotations" not in vars(rtbcore)
    # every submodule `import rtbcore` loads is either public or private by its name
    loaded = {m.split(".")[1] for m in sys.modules if m.startswith("rtbcore.")}
    assert {m for m in loaded if not m.startswith("_")} - {"cli"} <= public_modules
    star: dict[str, object] = {}
    exec("from rtbcore import *", star)
    assert set(star) - {"__builtins__"} == set(rtbcore.__all__)


def test_moved_simulation_names_still_resolve_from_their_old_module():
    from rtbcore import shading
    from rtbcore.sim import shading as sim

    for name in sim.__all__:
        assert getattr(shading, name) is getattr(sim, name)
    with pytest.raises(AttributeError, match="no_such_name"):
        shading.no_such_name  # noqa: B018


def test_the_console_script_runs_the_cli_package():
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "rtbcore"]
    from rtbcore.cli import main

    assert script.load() is main
