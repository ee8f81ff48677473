"""The exchange server under test, started once per module and server kind: the Python peer
(``benches/peer/server.py``) always, ``rtbcore serve`` when this build has it."""

from __future__ import annotations

import pytest

from exchange.client import KINDS, Server, skip_unless_serve, start_server


@pytest.fixture(scope="module", params=KINDS)
def server(request, tmp_path_factory) -> Server:
    skip_unless_serve(request.param)
    srv = start_server(request.param, tmp_path_factory.mktemp(request.param))
    yield srv
    rc = srv.stop()
    assert rc == 0, f"{srv.kind} exited with {rc} on SIGTERM: {srv.stderr[-20:]}"
