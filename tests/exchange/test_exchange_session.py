"""Sessions: HTTP health, subprotocol negotiation, authentication and its close codes, scopes,
shutdown."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request

import pytest

from exchange.client import (
    KINDS,
    Client,
    R,
    msg,
    open_auction,
    pb,
    place,
    skip_unless_serve,
    start_server,
    token,
)


def test_readyz_and_healthz_answer_200(server):
    for path in ("/readyz", "/healthz"):
        with urllib.request.urlopen(server.http + path, timeout=5) as r:
            assert r.status == 200


def test_auth_with_a_key_reports_the_buyer_and_its_scopes(server):
    name, key = server.fresh("m")
    with Client(server.url) as c:
        res = c.login(key).auth_result
    assert res.ok and res.buyer_id == name
    assert set(res.scopes) == {"bid", "subscribe", "metrics"}
    assert res.last_seq == 0  # a buyer nobody used yet


def test_auth_with_a_signed_token(server):
    with Client(server.url) as c:
        c.send(msg(auth=pb.Auth(token=token("tok-buyer", ["bid"], time.time() + 60))))
        res = c.expect("auth_result").auth_result
    assert res.ok and res.buyer_id == "tok-buyer" and list(res.scopes) == ["bid"]


@pytest.mark.parametrize("bad", ["expired", "wrong-secret", "garbled"])
def test_a_bad_token_closes_with_4001(server, bad):
    tok = {
        "expired": token("tok-buyer", ["bid"], time.time() - 5),
        "wrong-secret": token("tok-buyer", ["bid"], time.time() + 60, secret="other"),
        "garbled": "v1.not-base64.nor-a-signature",
    }[bad]
    with Client(server.url) as c:
        c.send(msg(auth=pb.Auth(token=tok)))
        assert not c.expect("auth_result").auth_result.ok
        assert c.closed_with() == 4001


def test_auth_result_and_connection_events_carry_seq_0(server):
    _, key = server.fresh("b")
    with Client(server.url) as c:
        c.send(msg(auth=pb.Auth(api_key=key)), msg("s1", subscribe=pb.Subscribe()))
        auth = c.expect("auth_result")
        ack = c.expect("subscription_ack")
    assert auth.seq == 0 and ack.seq == 0
    assert ack.request_id == "s1"
    assert auth.event_id and ack.event_id and auth.event_id != ack.event_id


def test_a_bad_key_is_answered_then_closed_with_4001(server):
    with Client(server.url) as c:
        c.send(msg(auth=pb.Auth(api_key="rtbk_not-a-key")))
        res = c.expect("auth_result").auth_result
        assert not res.ok and res.message
        assert c.closed_with() == 4001


def test_no_auth_within_the_timeout_closes_with_4002(server):
    t0 = time.monotonic()
    with Client(server.url) as c:
        assert c.closed_with(timeout=5) == 4002
    # auth_timeout_s = 1.0 in the test config
    assert 0.8 < time.monotonic() - t0 < 4


def test_a_request_before_auth_is_rejected_with_seq_0_and_auth_still_works(server):
    _, key = server.fresh("b")
    with Client(server.url) as c:
        c.send(place("nowhere", 1_000_000, request_id="early"))
        ev = c.expect("bid_rejected")
        assert ev.bid_rejected.reason == R.NOT_AUTHENTICATED
        assert ev.seq == 0 and ev.request_id == "early"
        assert c.login(key).auth_result.ok


def test_a_message_needing_a_missing_scope_is_forbidden(server):
    _, bidder = server.fresh("b")  # no "publish"
    _, watcher = server.fresh("x")  # only "subscribe"
    with Client(server.url) as c:
        c.login(bidder)
        c.send(open_auction("forbidden-open"))
        assert c.expect("bid_rejected").bid_rejected.reason == R.FORBIDDEN
        c.send(msg(metrics=pb.MetricsRequest()))
        assert c.expect("bid_rejected").bid_rejected.reason == R.FORBIDDEN
    with Client(server.url) as c:
        c.login(watcher)
        c.send(place("forbidden-open", 1_000_000))
        assert c.expect("bid_rejected").bid_rejected.reason == R.FORBIDDEN


def test_metrics_request_is_answered_with_the_buyers_counters(server):
    _, key = server.fresh("m")
    with Client(server.url) as c:
        c.login(key)
        c.send(msg("q", metrics=pb.MetricsRequest()))
        ev = c.expect("metrics_update")
    assert ev.request_id == "q" and ev.seq == 0
    assert "bids_placed" in ev.metrics_update.metrics


def test_no_subprotocol_asked_means_binary_protobuf(server):
    _, key = server.fresh("b")
    with Client(server.url, subprotocol=None) as c:
        assert c.ws.subprotocol is None
        assert c.login(key).auth_result.ok


@pytest.mark.parametrize("json", [False, True], ids=["proto", "json"])
def test_the_json_subprotocol_speaks_the_same_messages(server, json):
    _, key = server.fresh("b")
    with Client(server.url, json=json) as c:
        assert c.ws.subprotocol == ("rtbcore.v1.json" if json else "rtbcore.v1.proto")
        assert c.login(key, pb.Subscribe()).auth_result.ok


def test_a_frame_of_the_other_subprotocols_type_closes_with_1003(server):
    _, key = server.fresh("b")
    with Client(server.url) as c:
        c.login(key)
        c.send_raw('{"messages": []}')  # text on the binary subprotocol
        assert c.closed_with() == 1003
    with Client(server.url, json=True) as c:
        c.login(key)
        c.send_raw(b"\x0a\x00")  # binary on the JSON subprotocol
        assert c.closed_with() == 1003


@pytest.mark.parametrize("kind", KINDS)
def test_sigterm_closes_connections_with_1001_and_exits_0(kind, tmp_path):
    skip_unless_serve(kind)
    srv = start_server(kind, tmp_path)
    try:
        _, key = srv.fresh("b")
        with Client(srv.url) as c:
            c.login(key, pb.Subscribe())
            srv.proc.send_signal(signal.SIGTERM)
            assert c.closed_with(timeout=10) == 1001
        assert srv.proc.wait(10) == 0
    finally:
        srv.stop(signal.SIGKILL)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(srv.http + "/readyz", timeout=1)
