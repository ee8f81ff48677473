"""State shared between processes and hosts through Redis: campaign budgets
(:class:`SharedBudget`), frequency caps (:class:`FrequencyCap`) and pacing across nodes
(:class:`SharedPacer`). Needs the ``redis`` extra (``pip install rtbcore[redis]``: redis-py with
hiredis) and a Redis server or cluster. The protocol, key layout and failure costs are in
docs/distributed.md."""

from __future__ import annotations

try:
    import redis  # noqa: F401
except ImportError as e:  # pragma: no cover - the extra is part of the test set-up
    raise ImportError(
        "rtbcore.distributed needs redis-py: pip install 'rtbcore[redis]'"
    ) from e

from rtbcore.distributed.breaker import CircuitBreaker
from rtbcore.distributed.budget import SharedBudget
from rtbcore.distributed.frequency import FrequencyCap
from rtbcore.distributed.pacing import SharedPacer

__all__ = ["SharedBudget", "FrequencyCap", "SharedPacer", "CircuitBreaker"]
