# clearing kernels of rtbcore._fastpath (included by _fastpath.pyx)
#
# The per-auction object API, for callers who hold a handful of bids as objects:
# Bid, SecondPriceAuction, FirstPriceAuction. Same semantics as the batch kernels in
# rust/core/src/clearing.rs (eligibility, ranking by price x quality with ties to the earlier
# bid, second-price rule with reserve and increment); tests/test_clearing_objects.py checks that
# both give the same answers. A Bid validates its fields when it is built (an invalid bid cannot
# exist), so run() never meets one: this matches on_invalid="raise" of the batch API.
# Names carry the _cl_ prefix because every .pxi shares one module namespace.

from rtbcore.errors import InvalidBidError as _ClInvalidBid
from rtbcore.errors import InvalidInputError as _ClInvalidInput


cdef inline double _cl_real(object value, str name) except? -1.0:
    # anything float() takes (the objects are built by hand from many sources), not bool/str
    return _ck_float(value, name, "a real number", False)


cdef class Bid:
    """One bid: ``Bid(bidder_id, amount, quality=1.0, creative_id=None)``.

    ``amount`` must be finite and >= 0 (a zero bid is valid but never eligible), ``quality``
    finite and > 0; otherwise :class:`~rtbcore.errors.InvalidBidError` names the field. Bids are
    immutable.
    """

    cdef readonly object bidder_id
    cdef readonly double amount
    cdef readonly double quality
    cdef readonly object creative_id

    def __init__(self, bidder_id, amount, quality=1.0, creative_id=None):
        cdef double a = _cl_real(amount, "amount")
        cdef double q = _cl_real(quality, "quality")
        if not _ck_nonneg(a):
            raise _ClInvalidBid(f"amount = {a!r}: must be finite and >= 0")
        if not _ck_pos(q):
            raise _ClInvalidBid(f"quality = {q!r}: must be finite and > 0")
        self.bidder_id = bidder_id
        self.amount = a
        self.quality = q
        self.creative_id = creative_id

    @property
    def adjusted(self):
        # the ranking score amount * quality (no docstring: Cython would add a __test__ dict)
        return self.amount * self.quality

    def __repr__(self):
        extra = "" if self.creative_id is None else f", creative_id={self.creative_id!r}"
        return f"Bid({self.bidder_id!r}, {self.amount!r}, quality={self.quality!r}{extra})"

    def __eq__(self, other):
        if not isinstance(other, Bid):
            return NotImplemented
        o = <Bid>other
        return (self.bidder_id, self.amount, self.quality, self.creative_id) == (
            o.bidder_id, o.amount, o.quality, o.creative_id)

    def __hash__(self):
        return hash((self.bidder_id, self.amount, self.quality, self.creative_id))

    def __reduce__(self):
        return (Bid, (self.bidder_id, self.amount, self.quality, self.creative_id))


cdef double _cl_nonneg(object value, str name) except? -1.0:
    cdef double x = _cl_real(value, name)
    if not _ck_nonneg(x):
        raise _ClInvalidInput(f"{name} = {x!r}: must be finite and >= 0")
    return x


cdef tuple _cl_top2(object bids, double reserve):
    """(winner Bid or None, its adjusted bid, second adjusted bid or -1.0 when none)."""
    cdef Bid b, best = None
    cdef double adj, a1 = -1.0, a2 = -1.0
    cdef Py_ssize_t i = 0
    for obj in bids:
        if not isinstance(obj, Bid):
            raise _ClInvalidInput(f"bids[{i}]: expected a Bid, got {type(obj).__name__}")
        b = <Bid>obj
        i += 1
        if not (b.amount > 0.0 and b.amount >= reserve):
            continue
        adj = b.amount * b.quality
        if adj > a1:  # strict: ties stay with the earlier bid
            a2 = a1
            a1 = adj
            best = b
        elif adj > a2:
            a2 = adj
    return best, a1, a2


cdef class SecondPriceAuction:
    """One second-price auction with quality scores.

    ``SecondPriceAuction(reserve_price=0.10, increment=0.01).run(bids)`` returns
    ``(winning Bid, price)`` or None when no bid is eligible (amount > 0 and >= the reserve).
    Bids rank by ``amount * quality`` (ties to the earlier bid); the winner pays
    ``min(amount, max(reserve, second adjusted / its quality) + increment)``, or
    ``min(amount, reserve + increment)`` when alone. Same rule as :func:`rtbcore.clear_second_price`.
    """

    cdef readonly double reserve_price
    cdef readonly double increment

    def __init__(self, reserve_price=0.10, increment=0.01):
        self.reserve_price = _cl_nonneg(reserve_price, "reserve_price")
        self.increment = _cl_nonneg(increment, "increment")

    def run(self, bids):
        # clears the auction over an iterable of Bid: (Bid, price) or None (see the class doc)
        best, a1, a2 = _cl_top2(bids, self.reserve_price)
        if best is None:
            return None
        cdef Bid w = <Bid>best
        cdef double floor = self.reserve_price
        if a2 >= 0.0 and a2 / w.quality > floor:
            floor = a2 / w.quality
        return w, min(w.amount, floor + self.increment)

    def __repr__(self):
        return f"SecondPriceAuction(reserve_price={self.reserve_price!r}, increment={self.increment!r})"

    def __reduce__(self):
        return (SecondPriceAuction, (self.reserve_price, self.increment))


cdef class FirstPriceAuction:
    """One first-price auction with quality scores.

    ``FirstPriceAuction(reserve_price=0.10).run(bids)`` returns ``(winning Bid, its amount)`` or
    None when no bid is eligible. Same rule as :func:`rtbcore.clear_first_price`.
    """

    cdef readonly double reserve_price

    def __init__(self, reserve_price=0.10):
        self.reserve_price = _cl_nonneg(reserve_price, "reserve_price")

    def run(self, bids):
        # clears the auction over an iterable of Bid: (Bid, price) or None (see the class doc)
        best, _, _ = _cl_top2(bids, self.reserve_price)
        if best is None:
            return None
        return best, (<Bid>best).amount

    def __repr__(self):
        return f"FirstPriceAuction(reserve_price={self.reserve_price!r})"

    def __reduce__(self):
        return (FirstPriceAuction, (self.reserve_price,))
