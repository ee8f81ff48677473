"""The peer's view of ``exchange.toml`` and ``keys.toml`` (the subset every server honours),
and a writer of both for tests and benchmarks.

Errors name the key and the file. Keys are stored as the SHA-256 of the key's UTF-8 bytes;
the server hashes what a client sends and looks the digest up, so a key is never compared
byte by byte (the digest of a wrong key says nothing about the right one).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SCOPES = ("bid", "subscribe", "publish", "metrics")
MECHANISMS = ("first_price", "second_price")


class ConfigError(ValueError):
    """A config or keys file that does not load; the message names the file and the key."""


@dataclass(frozen=True)
class Credential:
    buyer: str
    scopes: frozenset[str]


@dataclass
class PeerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_frame_bytes: int = 1 << 20
    max_messages_per_frame: int = 4096
    keys: dict[str, Credential] = field(default_factory=dict)  # sha256 hex -> credential
    token_secret: str = ""
    auth_timeout_s: float = 5.0
    mechanism: str = "second_price"
    currency: str = "USD"
    workers: int = 1
    tmax_ms: float = 100.0
    # the peer's own: events kept per buyer for replay (an in-memory log)
    log_events: int = 32768


def _get(table: dict, key: str, kind: type | tuple[type, ...], where: str, default):
    if key not in table:
        return default
    v = table[key]
    if isinstance(v, bool) and kind is not bool:
        raise ConfigError(f"{where}.{key}: expected {kind}, got {v!r}")
    if not isinstance(v, kind):
        raise ConfigError(f"{where}.{key}: expected {kind}, got {v!r}")
    return v


def load_keys(path: Path) -> dict[str, Credential]:
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None
    out: dict[str, Credential] = {}
    for i, entry in enumerate(doc.get("keys", [])):
        where = f"{path}: keys[{i}]"
        buyer = entry.get("buyer")
        digest = entry.get("sha256")
        scopes = entry.get("scopes", ["bid", "subscribe"])
        if not isinstance(buyer, str) or not buyer:
            raise ConfigError(f"{where}.buyer: expected a non-empty string")
        if not isinstance(digest, str) or len(digest) != 64:
            raise ConfigError(f"{where}.sha256: expected 64 hex digits")
        bad = [s for s in scopes if s not in SCOPES]
        if bad:
            raise ConfigError(f"{where}.scopes: unknown scope {bad[0]!r} (known: {SCOPES})")
        out[digest.lower()] = Credential(buyer, frozenset(scopes))
    return out


def load(path: str | Path | None) -> PeerConfig:
    cfg = PeerConfig()
    if path is None:
        return cfg
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None
    server, auth, engine = doc.get("server", {}), doc.get("auth", {}), doc.get("engine", {})
    w = str(path)
    cfg.host = _get(server, "host", str, f"{w}: server", cfg.host)
    cfg.port = _get(server, "port", int, f"{w}: server", cfg.port)
    cfg.max_frame_bytes = _get(server, "max_frame_bytes", int, f"{w}: server", cfg.max_frame_bytes)
    cfg.max_messages_per_frame = _get(server, "max_messages_per_frame", int, f"{w}: server",
                                      cfg.max_messages_per_frame)
    keys_file = _get(auth, "keys_file", str, f"{w}: auth", None)
    cfg.token_secret = _get(auth, "token_secret", str, f"{w}: auth", "")
    cfg.auth_timeout_s = float(_get(auth, "auth_timeout_s", (int, float), f"{w}: auth", 5.0))
    cfg.mechanism = _get(engine, "mechanism", str, f"{w}: engine", cfg.mechanism)
    cfg.currency = _get(engine, "currency", str, f"{w}: engine", cfg.currency)
    cfg.workers = _get(engine, "workers", int, f"{w}: engine", cfg.workers)
    cfg.tmax_ms = float(_get(engine, "tmax_ms", (int, float), f"{w}: engine", cfg.tmax_ms))
    cfg.log_events = _get(doc.get("peer", {}), "log_events", int, f"{w}: peer", cfg.log_events)
    if cfg.mechanism not in MECHANISMS:
        raise ConfigError(f"{w}: engine.mechanism: {cfg.mechanism!r} is not one of {MECHANISMS}")
    if cfg.max_frame_bytes < 1024:
        raise ConfigError(f"{w}: server.max_frame_bytes: must be >= 1024")
    if keys_file is not None:
        cfg.keys = load_keys(path.parent / keys_file)
    return cfg


def new_key() -> str:
    """A key as ``rtbcore keys add`` makes one: ``rtbk_`` + base64url of 32 random bytes."""
    return "rtbk_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def write_exchange(directory: str | Path, buyers: dict[str, list[str]], **settings) -> dict:
    """Writes ``exchange.toml`` and ``keys.toml`` into ``directory``: one new key per buyer
    (``buyers`` maps a buyer to its scopes). ``settings`` are ``section.key`` overrides, e.g.
    ``{"auth.auth_timeout_s": 1.0}``. Returns ``{"config": path, "keys": {buyer: key}}``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    keys = {b: new_key() for b in buyers}
    lines = []
    for b, scopes in buyers.items():
        digest = hashlib.sha256(keys[b].encode()).hexdigest()
        lines += ["[[keys]]", f'buyer = "{b}"', f'sha256 = "{digest}"',
                  "scopes = [" + ", ".join(f'"{s}"' for s in scopes) + "]", ""]
    (d / "keys.toml").write_text("\n".join(lines))
    sections: dict[str, dict] = {
        "server": {"host": "127.0.0.1", "port": 0},
        "auth": {"keys_file": "keys.toml", "auth_timeout_s": 5.0},
        "engine": {"mechanism": "second_price", "currency": "USD", "workers": 1},
    }
    for k, v in settings.items():
        section, key = k.split(".", 1)
        sections.setdefault(section, {})[key] = v
    text = []
    for section, table in sections.items():
        text.append(f"[{section}]")
        for k, v in table.items():
            text.append(f"{k} = {_toml(v)}")
        text.append("")
    (d / "exchange.toml").write_text("\n".join(text))
    return {"config": d / "exchange.toml", "keys": keys}


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)
