"""``rtbcore serve`` (the exchange server in the foreground) and ``rtbcore keys add``."""

from __future__ import annotations

import argparse
import hashlib
import secrets
import signal
import sys
import threading
from pathlib import Path

from rtbcore.errors import InvalidInputError, RtbcoreError

SCOPES = ("bid", "subscribe", "publish", "metrics")


def serve(args: argparse.Namespace) -> int:
    """Runs the exchange until SIGTERM / SIGINT, then drains and exits 0."""
    from rtbcore.exchange import Exchange

    stop = threading.Event()
    # installed before the port opens, so a signal right after the "listening" line drains
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        ex = Exchange(args.config, host=args.host, port=args.port,
                      demo_traffic=args.demo_traffic).start()
    except RtbcoreError as e:
        print(f"rtbcore serve: {e}", file=sys.stderr)
        return 2
    if ex.dev_key:
        print(f"rtbcore serve: development API key: {ex.dev_key}", file=sys.stderr)
    print(f"rtbcore serve: listening on {ex.url}", file=sys.stderr, flush=True)
    while not stop.wait(0.2):
        pass
    print("rtbcore serve: draining", file=sys.stderr, flush=True)
    ex.stop()
    print("rtbcore serve: stopped", file=sys.stderr, flush=True)
    return 0


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def add_key(buyer: str, scopes: list[str], path: Path) -> str:
    """Generates an API key for ``buyer``, appends its hash to the keys file, returns the key."""
    if not (1 <= len(buyer) <= 64 and all(0x21 <= ord(c) < 0x7F for c in buyer)):
        raise InvalidInputError(f"buyer {buyer!r}: must be 1..=64 printable ASCII characters")
    for s in scopes:
        if s not in SCOPES:
            raise InvalidInputError(f"scope {s!r}: must be one of {', '.join(SCOPES)}")
    key = "rtbk_" + secrets.token_urlsafe(32)
    digest = hashlib.sha256(key.encode()).hexdigest()
    entry = (f"[[keys]]\nbuyer = {_toml_str(buyer)}\nsha256 = \"{digest}\"\n"
             f"scopes = [{', '.join(_toml_str(s) for s in scopes)}]\n")
    prefix = ""
    if path.exists() and path.stat().st_size > 0:
        prefix = "" if path.read_text().endswith("\n\n") else "\n"
    with path.open("a") as f:
        f.write(prefix + entry)
    return key


def keys_add(args: argparse.Namespace) -> int:
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    try:
        key = add_key(args.buyer, scopes, Path(args.file))
    except InvalidInputError as e:
        print(f"rtbcore keys add: {e}", file=sys.stderr)
        return 2
    print(key)
    print(f"rtbcore keys add: key for {args.buyer!r} ({','.join(scopes)}) added to {args.file}; "
          "it is shown only now", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("serve", help="run the exchange server in the foreground")
    s.add_argument("--config", default=None,
                   help="exchange.toml (default: a development exchange)")
    s.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="port (default 8080; 0: any free port)")
    s.add_argument("--demo-traffic", type=float, default=None, metavar="RATE",
                   help="synthetic auctions opened per second")
    s.set_defaults(func=serve)
    keys = sub.add_parser("keys", help="manage API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    add = ksub.add_parser("add", help="generate an API key for a buyer, print it once")
    add.add_argument("buyer")
    add.add_argument("--scopes", default="bid,subscribe",
                     help="comma-separated: bid, subscribe, publish, metrics "
                     "(default bid,subscribe)")
    add.add_argument("--file", default="keys.toml", help="the keys file to append to")
    add.set_defaults(func=keys_add)
