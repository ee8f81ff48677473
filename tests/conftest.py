"""Shared pytest fixtures. The shared oracles and helpers are in tests/oracles.py (importable as
``oracles`` because ``pythonpath`` in pyproject.toml lists tests/)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def path(tmp_path: Path) -> str:
    """A ring file path in the test's own temporary directory (nothing there yet)."""
    return str(tmp_path / "bids.ring")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """One redis-server for the session (tests use their own key prefixes or flush it)."""
    from redis_servers import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """The session server's URL, emptied for this test."""
    c = redis_server.client()
    c.flushall()
    c.close()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A local 3-master Redis Cluster for the session."""
    from redis_servers import RedisCluster

    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()
