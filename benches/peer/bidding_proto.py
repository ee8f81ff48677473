"""The exchange protocol's Python classes, generated from ``proto/rtbcore/v1/bidding.proto``.

``load()`` compiles the ``.proto`` with ``grpcio-tools`` (which bundles ``protoc`` and the
well-known types) into a cache directory keyed by the file's hash, and imports the result as
the module ``bidding_pb2``. Nothing generated is kept in the repository: the ``.proto`` is the
only source, so the classes can never drift from it. The peer server, the benchmarks and the
conformance tests all import the classes from here.

The cache lives in ``$RTBCORE_PROTO_CACHE`` if set, else in the system's temporary directory;
a generation writes into a private directory and renames it into place, so concurrent
processes never import a half-written module.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

PROTO = Path(__file__).resolve().parents[2] / "proto" / "rtbcore" / "v1" / "bidding.proto"
MODULE = "bidding_pb2"

SUBPROTOCOL_PROTO = "rtbcore.v1.proto"
SUBPROTOCOL_JSON = "rtbcore.v1.json"


def _cache_root() -> Path:
    root = os.environ.get("RTBCORE_PROTO_CACHE")
    return Path(root) if root else Path(tempfile.gettempdir()) / "rtbcore-proto"


def _generate(dest: Path) -> None:
    from grpc_tools import protoc  # the test extra's grpcio-tools: protoc in a wheel

    include = Path(protoc.__file__).resolve().parent / "_proto"  # google/protobuf/*.proto
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        # -I at the file's own folder: the module is `bidding_pb2`, not `rtbcore.v1.…`, which
        # would collide with the rtbcore package
        rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"-I{include}",
                          f"--python_out={work}", str(PROTO)])
        if rc != 0:
            raise RuntimeError(f"protoc failed ({rc}) on {PROTO}")
        try:
            work.rename(dest)
        except OSError:  # another process got there first: its copy is the same
            if not (dest / f"{MODULE}.py").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load() -> ModuleType:
    """The generated module (``bidding_pb2``), generating it on first use."""
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    digest = hashlib.sha256(PROTO.read_bytes()).hexdigest()[:16]
    dest = _cache_root() / digest
    path = dest / f"{MODULE}.py"
    if not path.exists():
        _generate(dest)
    spec = importlib.util.spec_from_file_location(MODULE, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = mod
    spec.loader.exec_module(mod)
    return mod
