"""Learned floors for the auctions an embedding program opens on its exchange.

:class:`LearnedFloors` sits between a program and its :class:`~rtbcore.exchange.Exchange`:
``open_auction`` applies the :class:`~rtbcore.floors.FloorOptimizer`'s floor for the auction's
segment, and the results read through it are learned from (price and sale only, the censored
feedback an exchange has about its own second-price auctions), so the floors per segment are
refreshed from the exchange's own results::

    floors = LearnedFloors(ex, FloorOptimizer(8, explore=0.05), segment="segment")
    floors.open_auction(attributes={"segment": "3"}, tmax_s=0.1)
    for result in floors.results(timeout=1.0):
        ...

Only auctions opened through it are floored and learned from: the exchange's other sources
keep the floor they come with, unless the server learns floors itself for publisher
connections and OpenRTB requests (its ``[floors]`` config section, docs/floors.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

from rtbcore.errors import InvalidInputError
from rtbcore.exchange import AuctionResult, Exchange, OpenedAuction
from rtbcore.floors import FloorOptimizer

__all__ = ["LearnedFloors"]

MICROS = 1_000_000


class LearnedFloors:
    """Floors per segment from ``optimizer`` for auctions opened on ``exchange``.

    ``segment``: the attribute holding the auction's segment id (an int in
    ``[0, optimizer.segments)``), or a function from the attributes to that id. Floors and
    prices are per impression in the optimizer; the exchange takes micros
    (``micros_per_unit`` of them per unit, 1,000,000 by default). Learned rows are buffered and
    given to the optimizer ``batch`` at a time (:meth:`flush` gives the rest at once). Every
    result is learned, unsold ones too: the exchange refuses bids below the floor, so an auction
    that closed without a bid is what a floor too high looks like, and leaving it out would
    favour high floors. Not thread-safe, like the optimizer: open auctions and read results
    from one thread.
    """

    def __init__(
        self,
        exchange: Exchange,
        optimizer: FloorOptimizer,
        segment: str | Callable[[Mapping[str, str]], int],
        *,
        micros_per_unit: int = MICROS,
        batch: int = 256,
    ) -> None:
        if optimizer.bidders is not None:
            raise InvalidInputError(
                "optimizer: per-bidder reserves need the top bidder before the auction opens; "
                "use an optimizer without bidders="
            )
        if optimizer.explore <= 0.0:
            raise InvalidInputError(
                "optimizer: explore = 0, but the exchange's results give the price only, which "
                "teaches the applied floor alone; an optimizer that does not explore never "
                "moves its floors (give explore > 0, e.g. 0.05)"
            )
        if micros_per_unit <= 0:
            raise InvalidInputError(f"micros_per_unit = {micros_per_unit}: must be > 0")
        if batch < 1:
            raise InvalidInputError(f"batch = {batch}: must be >= 1")
        self.exchange = exchange
        self.optimizer = optimizer
        self._segment = segment
        self._micros = int(micros_per_unit)
        self._batch = int(batch)
        self._open: dict[str, tuple[int, float]] = {}   # auction id -> (segment, floor applied)
        self._rows: list[tuple[int, float, float, bool]] = []
        self.learned = 0

    def segment_of(self, attributes: Mapping[str, str]) -> int:
        """The segment id of an auction with these attributes (InvalidInputError if none)."""
        if callable(self._segment):
            seg = self._segment(attributes)
        else:
            raw = attributes.get(self._segment)
            if raw is None:
                raise InvalidInputError(f"attributes: no {self._segment!r} attribute (the segment)")
            try:
                seg = int(raw)
            except ValueError:
                raise InvalidInputError(
                    f"attributes[{self._segment!r}] = {raw!r}: not an integer segment id"
                ) from None
        if not isinstance(seg, (int, np.integer)) or not 0 <= seg < self.optimizer.segments:
            raise InvalidInputError(
                f"segment = {seg!r}: must be an int in [0, {self.optimizer.segments})"
            )
        return int(seg)

    def open_auction(
        self,
        auction_id: str = "",
        *,
        attributes: Mapping[str, str] | None = None,
        tmax_s: float | None = None,
        expected_bids: int = 0,
    ) -> OpenedAuction:
        """Opens an auction with the floor of its segment (see ``Exchange.open_auction``)."""
        attrs = dict(attributes or {})
        seg = self.segment_of(attrs)
        floor = float(self.optimizer.lookup(np.array([seg], dtype=np.int64))[0])
        opened = self.exchange.open_auction(
            auction_id, attributes=attrs, floor_micros=round(floor * self._micros),
            tmax_s=tmax_s, expected_bids=expected_bids,
        )
        self._open[opened.auction_id] = (seg, floor)
        return opened

    @property
    def pending(self) -> int:
        """Auctions opened through this object whose result has not been read yet."""
        return len(self._open)

    def learn(self, result: AuctionResult) -> bool:
        """Learns from one result; False when the auction was not opened here (left alone)."""
        opened = self._open.pop(result.auction_id, None)
        if opened is None:
            return False
        seg, floor = opened
        sold = result.winner is not None
        self._rows.append((seg, floor, result.price_micros / self._micros if sold else np.nan,
                           sold))
        if len(self._rows) >= self._batch:
            self.flush()
        return True

    def flush(self) -> None:
        """Gives the buffered rows to the optimizer now."""
        if not self._rows:
            return
        seg, floor, price, sold = zip(*self._rows, strict=True)
        self.optimizer.update(np.array(seg, dtype=np.int64), np.array(floor),
                              np.array(price), np.array(sold, dtype=bool))
        self.learned += len(self._rows)
        self._rows.clear()

    def next_result(self, timeout: float = 0.0) -> AuctionResult | None:
        """The exchange's next result (learned from when it is one of ours)."""
        r = self.exchange.next_result(timeout)
        if r is not None:
            self.learn(r)
        return r

    def results(self, timeout: float | None = None) -> Iterator[AuctionResult]:
        """The exchange's results as they come (see ``Exchange.results``), each learned from."""
        for r in self.exchange.results(timeout):
            self.learn(r)
            yield r
