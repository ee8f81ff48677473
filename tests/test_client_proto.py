"""The protocol classes shipped in the package (``rtbcore.client.bidding_pb2``) describe exactly
``proto/rtbcore/v1/bidding.proto``: protoc is run afresh and the file descriptors compared."""

from __future__ import annotations

import ast
from pathlib import Path

from google.protobuf import descriptor_pb2

from rtbcore.client import bidding_pb2

from bidding_proto import generate


def _serialized(path: Path) -> bytes:
    """The serialized FileDescriptorProto a generated module registers."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile":
            return ast.literal_eval(node.args[0])
    raise AssertionError(f"no AddSerializedFile in {path}")


def test_the_shipped_classes_match_the_proto(tmp_path: Path) -> None:
    fresh = descriptor_pb2.FileDescriptorProto.FromString(_serialized(generate(tmp_path)))
    shipped = descriptor_pb2.FileDescriptorProto()
    bidding_pb2.DESCRIPTOR.CopyToProto(shipped)
    assert shipped == fresh, (
        "rtbcore/client/bidding_pb2.py is stale: regenerate it from proto/ "
        "(python -c 'import sys; sys.path.insert(0, \"benches/peer\"); import bidding_proto, "
        "pathlib; print(bidding_proto.generate(pathlib.Path(\"/tmp/pb\")))' and copy the .py "
        "and .pyi into rtbcore/client/)")

