"""The exchange protocol's Python classes: ``rtbcore.client.bidding_pb2``, generated from
``proto/rtbcore/v1/bidding.proto`` and shipped in the package (the SDK needs them at run time).

``generate(dest)`` compiles the ``.proto`` afresh with ``grpcio-tools`` (which bundles
``protoc`` and the well-known types); tests/test_client_proto.py uses it to check that the
shipped module describes exactly the ``.proto`` in the repository. The peer server, the
benchmarks and the conformance tests import the classes from here (one copy in the process:
two would register the same protobuf names twice).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
PROTO = PROTO_ROOT / "rtbcore" / "v1" / "bidding.proto"

SUBPROTOCOL_PROTO = "rtbcore.v1.proto"
SUBPROTOCOL_JSON = "rtbcore.v1.json"


def generate(dest: Path) -> Path:
    """Runs protoc on the ``.proto`` into ``dest``; returns the generated ``bidding_pb2.py``."""
    from grpc_tools import protoc  # the test extra's grpcio-tools: protoc in a wheel

    include = Path(protoc.__file__).resolve().parent / "_proto"  # google/protobuf/*.proto
    dest.mkdir(parents=True, exist_ok=True)
    rc = protoc.main(["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={dest}",
                      f"--pyi_out={dest}", str(PROTO)])
    if rc != 0:
        raise RuntimeError(f"protoc failed ({rc}) on {PROTO}")
    return dest / "rtbcore" / "v1" / "bidding_pb2.py"


def load() -> ModuleType:
    """The protocol module shipped in the package."""
    from rtbcore.client import bidding_pb2

    return bidding_pb2
