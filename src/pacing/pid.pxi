# pacing: the PID controller (the adaptive pacer is a PID on a profile curve; see
# pacing/common.pxi and pacing/profile.pxi)

ctypedef struct _PcPid:
    double kp, ki, kd, base, lo, hi, imin, imax
    const double* cum
    Py_ssize_t nb


cdef inline double _pc_pid_error(const _PcPid* g, double s, double b, double frac) noexcept nogil:
    """(target - spent) / budget: > 0 when behind the target curve; 0 for a zero budget."""
    if b > 0.0:
        return (b * _pc_curve(g.cum, g.nb, frac) - s) / b
    return 0.0


cdef inline double _pc_pid_out(const _PcPid* g, double err, double integ, double deriv) noexcept nogil:
    cdef double u = g.base + g.kp * err + g.ki * integ + g.kd * deriv
    return g.lo if u < g.lo else (g.hi if u > g.hi else u)


@_pc_cython.auto_pickle(False)
cdef class _PIDPacer(_Pacer):
    """Core of rtbcore.pacing.PIDPacer (see there)."""

    cdef _PcPid _g
    cdef bint _participation
    cdef _pc_u64 _rng
    cdef object _shape          # shape of the campaigns (the budget's at construction)
    cdef Py_ssize_t _n
    cdef object _budget, _integ, _deriv, _prev, _last, _cum_arr
    cdef double[::1] _mv_budget, _mv_integ, _mv_deriv, _mv_prev, _mv_last
    cdef const double[::1] _mv_cum
    cdef unsigned long long _updates

    def __init__(self, budget, total=86_400.0, clock=None, start=None, *, kp=10.0, ki=50.0,
                 kd=0.0, output="multiplier", base=None, lo=None, hi=None, profile=None,
                 seed=0):
        cdef double ckp = _ck_real(kp, "kp"), cki = _ck_real(ki, "ki"), ckd = _ck_real(kd, "kd")
        cdef double cbase, clo, chi
        if ckp < 0 or cki < 0 or ckd < 0:
            raise _PcInvalid(f"kp, ki, kd must be >= 0, got {kp!r}, {ki!r}, {kd!r}")
        if not isinstance(output, str) or output not in ("multiplier", "participation"):
            raise _PcInvalid(f"output must be 'multiplier' or 'participation', got {output!r}")
        part = output == "participation"
        cbase = _ck_real(base if base is not None else (0.5 if part else 1.0), "base")
        clo = _ck_real(lo if lo is not None else (0.01 if part else 0.1), "lo")
        chi = _ck_real(hi if hi is not None else (1.0 if part else 3.0), "hi")
        if not (0.0 <= clo <= cbase <= chi):
            raise _PcInvalid(f"need 0 <= lo <= base <= hi, got lo={clo!r}, base={cbase!r}, hi={chi!r}")
        if part and chi > 1.0:
            raise _PcInvalid(f"hi must be <= 1 for a participation rate, got {chi!r}")
        b = _pc_array(budget, "budget")
        bad = _pc_np.flatnonzero(~((b >= 0) & _pc_np.isfinite(b)).reshape(-1))
        if bad.size:
            _pc_raise(_PC_A_BUDGET * 16 + _PC_NONNEG, int(bad[0]), [None, b], ("spent", "budget"))
        cum = _pc_cum_profile(profile)
        r = _ck_seed(seed)
        _Pacer.__init__(self, total, clock, start)
        self._shape = b.shape
        self._budget = _pc_np.array(b, dtype=_pc_np.float64).reshape(-1)
        self._n = self._budget.shape[0]
        self._integ = _pc_np.zeros(self._n)
        self._deriv = _pc_np.zeros(self._n)
        self._prev = _pc_np.zeros(self._n)
        self._last = _pc_np.zeros(self._n)
        self._cum_arr = cum
        self._mv_budget = self._budget
        self._mv_integ = self._integ
        self._mv_deriv = self._deriv
        self._mv_prev = self._prev
        self._mv_last = self._last
        self._mv_cum = cum
        self._g.kp = ckp
        self._g.ki = cki
        self._g.kd = ckd
        self._g.base = cbase
        self._g.lo = clo
        self._g.hi = chi
        # anti-windup (1): the integral alone can never push the output past [lo, hi]
        self._g.imin = (clo - cbase) / cki if cki > 0 else -_PC_INF
        self._g.imax = (chi - cbase) / cki if cki > 0 else _PC_INF
        self._g.cum = &self._mv_cum[0]
        self._g.nb = cum.shape[0] - 1
        self._participation = part
        self._rng = r
        self._updates = 0

    # ---- state, read-only (copies) ----

    @property
    def shape(self):
        """Shape of the campaigns this pacer tracks (the budget's)."""
        return self._shape

    @property
    def budget(self):
        return self._budget.reshape(self._shape).copy()

    @property
    def integral(self):
        """The integral of the error (budget share x period share), per campaign."""
        return self._integ.reshape(self._shape).copy()

    @property
    def derivative(self):
        return self._deriv.reshape(self._shape).copy()

    @property
    def last_error(self):
        return self._prev.reshape(self._shape).copy()

    @property
    def last_update(self):
        """Elapsed seconds of each campaign's last update (0 before any)."""
        return self._last.reshape(self._shape).copy()

    @property
    def updates(self):
        return int(self._updates)

    @property
    def gains(self):
        return {"kp": self._g.kp, "ki": self._g.ki, "kd": self._g.kd, "base": self._g.base,
                "lo": self._g.lo, "hi": self._g.hi}

    @property
    def output_kind(self):
        return "participation" if self._participation else "multiplier"

    @property
    def cumulative_profile(self):
        """The target curve at the bucket edges: B + 1 values from 0 to 1."""
        return _pc_np.array(self._cum_arr)

    def target(self, elapsed=None, total=None):
        """The target share of the budget at ``elapsed`` (scalar or array)."""
        if elapsed is None:
            elapsed = self._read_clock()
        e = _pc_array(elapsed, "elapsed")
        t = _ck_real(self._total if total is None else total, "total")
        if not (t > 0):
            raise _PcInvalid(f"total must be finite and > 0, got {t!r}")
        flat = _pc_np.ascontiguousarray(e).reshape(-1)
        bad = _pc_np.flatnonzero(~((flat >= 0) & (flat <= t)))
        if bad.size:
            _pc_raise(_PC_A_ELAPSED * 16 + (_PC_LATE if flat[bad[0]] > t else _PC_NONNEG),
                      int(bad[0]), [None, None, None, e], _PC_PACING_NAMES, t)
        out = _pc_np.empty(flat.shape[0])
        cdef Py_ssize_t i
        cdef double[::1] o = out
        cdef const double[::1] f = flat
        for i in range(f.shape[0]):
            o[i] = _pc_curve(self._g.cum, self._g.nb, f[i] / t)
        return float(out[0]) if e.ndim == 0 else out.reshape(e.shape)

    # ---- the kernels ----

    cdef list _args(self, spent, budget, cost, elapsed, total, tuple names):
        arrays = [_pc_array(spent, "spent"),
                  _pc_array(self._budget.reshape(self._shape) if budget is None else budget, "budget"),
                  None if cost is None else _pc_array(cost, "cost"),
                  _pc_array(self._read_clock() if elapsed is None else elapsed, "elapsed"),
                  _pc_array(self._total if total is None else total, "total")]
        for a, name in zip(arrays, names):
            if a is not None and a.ndim and a.shape != self._shape:
                raise _PcInvalid(
                    f"{name} has shape {a.shape} but the pacer tracks campaigns of shape "
                    f"{self._shape} (its budget's): pass that shape or a scalar")
        return arrays

    cdef Py_ssize_t _k_query(self, Py_ssize_t n, const _PcArg* a, bint want_bool, double* out,
                             unsigned char* bout, _pc_u64* rng, int* code) noexcept nogil:
        """Controller output (want_bool 0) or should_bid (1), validating in the same pass."""
        cdef Py_ssize_t i
        cdef double s, b, c = 0.0, e, t, u, cf
        cdef int k
        cdef const _PcPid* g = &self._g
        cdef const double* sp = a[_PC_A_SPENT].p
        cdef const double* bp = a[_PC_A_BUDGET].p
        cdef const double* last = &self._mv_last[0]
        cdef const double* integ = &self._mv_integ[0]
        cdef const double* deriv = &self._mv_deriv[0]
        cdef double base = g.base, kp = g.kp, ki = g.ki, kd = g.kd, lo = g.lo, hi = g.hi
        if not want_bool and a[_PC_A_ELAPSED].s == 0 and a[_PC_A_TOTAL].s == 0 \
                and a[_PC_A_SPENT].s == 1 and a[_PC_A_BUDGET].s == 1:
            # one clock for every campaign: the target share is computed once and the loop
            # is selects only (vectorised); on a bad element the generic loop below names it
            e = a[_PC_A_ELAPSED].p[0]
            t = a[_PC_A_TOTAL].p[0]
            if _pc_check_time(e, t) == 0:
                cf = _pc_curve(g.cum, g.nb, e / t)
                if _pc_pid_output(n, sp, bp, last, integ, deriv, out, e, cf, base, kp, ki, kd,
                                  lo, hi):
                    return -1
        for i in range(n):
            s = a[_PC_A_SPENT].p[i * a[_PC_A_SPENT].s]
            b = a[_PC_A_BUDGET].p[i * a[_PC_A_BUDGET].s]
            e = a[_PC_A_ELAPSED].p[i * a[_PC_A_ELAPSED].s]
            t = a[_PC_A_TOTAL].p[i * a[_PC_A_TOTAL].s]
            k = _pc_check(s, b, e, t)
            if k == 0 and e < self._mv_last[i]:
                k = _PC_A_ELAPSED * 16 + _PC_BACK
            if k == 0 and want_bool:
                c = a[_PC_A_COST].p[i * a[_PC_A_COST].s]
                k = _pc_check_cost(c)
            if k:
                code[0] = k
                return i
            if want_bool:
                if not _pc_cap(s, b, c):
                    bout[i] = 0
                elif not self._participation:
                    bout[i] = 1
                else:
                    u = _pc_pid_out(g, _pc_pid_error(g, s, b, e / t), self._mv_integ[i],
                                    self._mv_deriv[i])
                    bout[i] = 1 if u >= 1.0 else (_pc_uniform(rng) < u)
            else:
                out[i] = _pc_pid_out(g, _pc_pid_error(g, s, b, e / t), self._mv_integ[i],
                                     self._mv_deriv[i])
        return -1

    cdef object _query(self, spent, budget, cost, elapsed, total, bint want_bool):
        cdef _PcArg args[5]
        cdef Py_ssize_t n = self._n, bad
        cdef int code = 0
        cdef _pc_u64 rng = self._rng
        cdef double[::1] o
        cdef unsigned char[::1] m
        cdef double v[5]
        cdef double fout = 0.0
        cdef unsigned char bout = 0
        if len(self._shape) == 0:
            # one campaign, scalars in: the same kernel on C doubles, no arrays
            if elapsed is None:
                elapsed = self._read_clock()
            if budget is None:
                budget = self._mv_budget[0]
            if total is None:
                total = self._total
            if _ck_scalar(spent, &v[0]) and _ck_scalar(budget, &v[1]) \
                    and (not want_bool or _ck_scalar(cost, &v[2])) \
                    and _ck_scalar(elapsed, &v[3]) and _ck_scalar(total, &v[4]):
                if not want_bool:
                    v[2] = 0.0
                for j in range(5):
                    args[j].p = &v[j]
                    args[j].s = 0
                bad = self._k_query(1, args, want_bool, &fout, &bout, &rng, &code)
                if bad < 0:
                    self._rng = rng
                    return (bout != 0) if want_bool else fout
        cdef list arrays = self._args(spent, budget, cost, elapsed, total, _PC_PACING_NAMES)
        if not want_bool:
            arrays[_PC_A_COST] = _pc_np.zeros(())
        if n == 0:
            return _pc_np.empty(self._shape, dtype=_pc_np.bool_ if want_bool else _pc_np.float64)
        flats = [_pc_flat(a, n) for a in arrays]
        for j in range(5):
            args[j] = _pc_arg(flats[j])
        out = _pc_np.empty(n, dtype=_pc_np.bool_ if want_bool else _pc_np.float64)
        if want_bool:
            m = out.view(_pc_np.uint8)
            with nogil:
                bad = self._k_query(n, args, True, NULL, &m[0], &rng, &code)
        else:
            o = out
            with nogil:
                bad = self._k_query(n, args, False, &o[0], NULL, &rng, &code)
        if bad >= 0:
            extra = None
            if (code & 15) == _PC_BACK:
                extra = float(self._last[bad])
            elif (code & 15) == _PC_LATE:
                extra = float(flats[_PC_A_TOTAL][bad if flats[_PC_A_TOTAL].shape[0] > 1 else 0])
            _pc_raise(code, bad, arrays, _PC_PACING_NAMES, extra)
        self._rng = rng
        if len(self._shape) == 0:
            return bool(out[0]) if want_bool else float(out[0])
        return out.reshape(self._shape)

    def output(self, spent, budget=None, elapsed=None, total=None):
        """The controller's output (a bid multiplier or a participation rate) per campaign.

        P acts on the current gap; I and D come from the state fed by :meth:`update`.
        Does not change the state."""
        return self._query(spent, budget, None, elapsed, total, False)

    def multiplier(self, spent, budget=None, elapsed=None, total=None):
        """The bid multiplier: the controller output in ``output="multiplier"`` mode, else 1."""
        r = self._query(spent, budget, None, elapsed, total, False)
        if not self._participation:
            return r
        return 1.0 if len(self._shape) == 0 else _pc_np.ones(self._shape)

    def should_bid(self, spent, budget, cost, elapsed=None, total=None):
        """Hard cap; in ``output="participation"`` mode also a seeded coin with the output rate."""
        if cost is None:
            raise _PcInvalid("cost must be a real number or an array of them, got None")
        return self._query(spent, budget, cost, elapsed, total, True)

    def update(self, spent, elapsed=None):
        """Feed the controller: integrate the gap between spend and the target curve since the
        last update (with anti-windup) and refresh the derivative. All or nothing."""
        cdef _PcArg args[5]
        cdef Py_ssize_t n = self._n, bad = -1
        cdef int code = 0
        cdef double v[5]
        if len(self._shape) == 0:
            # one campaign, scalars in: the same kernels on C doubles, no arrays
            if elapsed is None:
                elapsed = self._read_clock()
            if _ck_scalar(spent, &v[0]) and _ck_scalar(elapsed, &v[3]):
                v[1] = self._mv_budget[0]
                v[2] = 0.0
                v[4] = self._total
                for j in range(5):
                    args[j].p = &v[j]
                    args[j].s = 0
                if self._k_update_check(1, args, &code) < 0:
                    self._commit(1, args)
                    self._updates += 1
                    return
        cdef list arrays = self._args(spent, None, None, elapsed, None, _PC_PACING_NAMES)
        if n == 0:
            self._updates += 1
            return
        arrays[_PC_A_COST] = _pc_np.zeros(())
        flats = [_pc_flat(a, n) for a in arrays]
        for j in range(5):
            args[j] = _pc_arg(flats[j])
        with nogil:
            bad = self._k_update_check(n, args, &code)   # pass 1: validate everything first
            if bad < 0:
                self._commit(n, args)
        if bad >= 0:
            extra = None
            if (code & 15) == _PC_BACK:
                extra = float(self._last[bad])
            elif (code & 15) == _PC_LATE:
                extra = self._total
            _pc_raise(code, bad, arrays, _PC_PACING_NAMES, extra)
        self._updates += 1

    cdef Py_ssize_t _k_update_check(self, Py_ssize_t n, const _PcArg* a, int* code) noexcept nogil:
        cdef Py_ssize_t i
        cdef double s, e, acc
        cdef int k, ok
        cdef const double* last = &self._mv_last[0]
        if a[3].s == 0 and a[4].s == 0 and a[0].s == 1:
            e = a[3].p[0]
            if _pc_check_time(e, a[4].p[0]) == 0:
                acc = 0.0
                for i in range(n):     # (the budgets are the pacer's: checked at construction)
                    s = a[0].p[i]
                    ok = (s >= 0.0) & (s < _PC_INF) & (e >= last[i])
                    acc = acc if ok else 1.0
                if acc == 0.0:
                    return -1
        for i in range(n):
            k = _pc_check(a[0].p[i * a[0].s], a[1].p[i * a[1].s], a[3].p[i * a[3].s],
                          a[4].p[i * a[4].s])
            if k == 0 and a[3].p[i * a[3].s] < last[i]:
                k = _PC_A_ELAPSED * 16 + _PC_BACK
            if k:
                code[0] = k
                return i
        return -1

    cdef void _commit(self, Py_ssize_t n, const _PcArg* a) noexcept nogil:
        cdef Py_ssize_t i
        cdef double s, b, e, t, err, dt, d, inew, u
        cdef const _PcPid* g = &self._g
        cdef double* last = &self._mv_last[0]
        cdef double* integ = &self._mv_integ[0]
        cdef double* deriv = &self._mv_deriv[0]
        cdef double* prev = &self._mv_prev[0]
        cdef double imin = g.imin, imax = g.imax, base = g.base, kp = g.kp, ki = g.ki
        cdef double kd = g.kd, lo = g.lo, hi = g.hi, cf
        if a[3].s == 0 and a[4].s == 0 and a[0].s == 1 and a[1].s == 1:
            # one clock for every campaign: the same arithmetic as below, as selects
            # (vectorised); a division by dt = 0 is computed and discarded
            e = a[3].p[0]
            t = a[4].p[0]
            cf = _pc_curve(g.cum, g.nb, e / t)
            _pc_pid_commit(n, a[0].p, a[1].p, last, integ, deriv, prev, e, t, cf, imin, imax,
                           base, kp, ki, kd, lo, hi)
            return
        for i in range(n):
            s = a[0].p[i * a[0].s]
            b = a[1].p[i * a[1].s]
            e = a[3].p[i * a[3].s]
            t = a[4].p[i * a[4].s]
            err = _pc_pid_error(g, s, b, e / t)
            dt = (e - last[i]) / t
            if dt > 0.0:
                d = (err - prev[i]) / dt
                inew = integ[i] + err * dt
                if inew < imin:
                    inew = imin
                elif inew > imax:
                    inew = imax
                # anti-windup (2), conditional integration: no integrating further into a
                # saturated output
                u = base + kp * err + ki * inew + kd * d
                if (u > hi and err > 0.0) or (u < lo and err < 0.0):
                    inew = integ[i]
                integ[i] = inew
                deriv[i] = d
            prev[i] = err
            last[i] = e

    def set_budget(self, budget):
        """Change the budgets of the current period (scalar or the campaigns' shape). The
        target becomes the new budget's share of the period; the controller state stays."""
        b = _pc_array(budget, "budget")
        if b.ndim and b.shape != self._shape:
            raise _PcInvalid(
                f"budget has shape {b.shape} but the pacer tracks campaigns of shape "
                f"{self._shape}: pass that shape or a scalar")
        flat = _pc_np.broadcast_to(b, self._shape).reshape(-1)
        bad = _pc_np.flatnonzero(~((flat >= 0) & _pc_np.isfinite(flat)))
        if bad.size:
            _pc_raise(_PC_A_BUDGET * 16 + _PC_NONNEG, int(bad[0]), [None, b], ("spent", "budget"))
        self._budget[:] = flat

    def rollover(self, start=None, total=None, budget=None):
        """Begin a new period (see _Pacer.rollover): the controller starts afresh (reset) and,
        if given, with new budgets. All or nothing."""
        cdef double old_start = self._start, old_total = self._total
        _Pacer.rollover(self, start, total)
        if budget is not None:
            try:
                self.set_budget(budget)
            except BaseException:
                self._start = old_start
                self._total = old_total
                raise
        self._integ[:] = 0.0
        self._deriv[:] = 0.0
        self._prev[:] = 0.0
        self._last[:] = 0.0
        self._updates = 0

    def _controller_state(self):
        return {"integral": self._integ.copy(), "derivative": self._deriv.copy(),
                "last_error": self._prev.copy(), "last_update": self._last.copy(),
                "updates": int(self._updates), "rng": int(self._rng)}

    def _set_controller_state(self, integral, derivative, last_error, last_update, updates, rng):
        arrays = []
        for name, x in (("integral", integral), ("derivative", derivative),
                        ("last_error", last_error), ("last_update", last_update)):
            a = _pc_np.asarray(x, dtype=_pc_np.float64).reshape(-1)
            if a.shape[0] != self._n or not _pc_np.isfinite(a).all():
                raise _PcInvalid(f"state {name}: expected {self._n} finite values, got {a!r}")
            arrays.append(a)
        r = _ck_seed(rng, "rng")
        u = _ck_seed(updates, "updates")
        self._integ[:] = arrays[0]
        self._deriv[:] = arrays[1]
        self._prev[:] = arrays[2]
        self._last[:] = arrays[3]
        self._updates = u
        self._rng = r

    def reset(self):
        """Forget the controller state (a new period)."""
        self._integ[:] = 0.0
        self._deriv[:] = 0.0
        self._prev[:] = 0.0
        self._last[:] = 0.0
        self._last_clock = -_PC_INF
        self._updates = 0
