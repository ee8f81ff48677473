// rtbcore bidding client for browsers and Node >= 20: the exchange protocol (rtbcore.v1.json
// subprotocol, protobuf's canonical JSON mapping) over the platform WebSocket, with reconnection
// (exponential backoff, full jitter), a circuit breaker, replay of missed events, idempotent
// requests and an idle-connection health probe. No runtime dependencies.

/** Reconnection strategies. */
export const ReconnectStrategy = Object.freeze({
  NONE: 'none',
  EXPONENTIAL_BACKOFF: 'exponential_backoff',
});

/** Event types a subscription may name (`Subscribe.event_types`). */
export const EVENT_TYPES = Object.freeze([
  'auction_started', 'bid_accepted', 'bid_rejected', 'auction_won', 'auction_lost',
  'bid_update', 'auction_closed',
]);

// oneof field of BidEvent (JSON name) -> event type name
const EVENT_KINDS = {
  authResult: 'auth_result', subscriptionAck: 'subscription_ack',
  auctionStarted: 'auction_started', bidAccepted: 'bid_accepted', bidRejected: 'bid_rejected',
  auctionWon: 'auction_won', auctionLost: 'auction_lost', bidUpdate: 'bid_update',
  metricsUpdate: 'metrics_update', auctionOpened: 'auction_opened',
  auctionClosed: 'auction_closed', error: 'error',
};

const SUBPROTOCOL = 'rtbcore.v1.json';
const MAX_ID_BYTES = 64;
const MAX_MICROS = 1e12;
// accepted bids remembered per auction, to answer a re-sent bid that meets its own (ALREADY_BID)
const KNOWN_BIDS = 10000;

/** The counters of `client.stats`. */
export const STAT_NAMES = Object.freeze([
  'events', 'duplicates', 'connects', 'reconnects', 'failed_attempts', 'requests_resent',
  'frames_sent', 'queue_full', 'replay_truncated', 'held_while_draining',
]);

/** Bad input detected locally, before anything is sent. */
export class InvalidInputError extends Error {
  constructor(message) { super(message); this.name = 'InvalidInputError'; }
}

/** The exchange refused a request (`BidRejected`); `reason` is the protocol's reject reason. */
export class BidRejectedError extends Error {
  constructor(event) {
    super(`${event.reason}: ${event.message}`);
    this.name = 'BidRejectedError';
    this.reason = event.reason;
    this.event = event;
  }
}

/** The connection is gone (closed by the user, refused by the circuit breaker, or auth failed). */
export class ConnectionError extends Error {
  constructor(message, code) { super(message); this.name = 'ConnectionError'; this.code = code; }
}

/** A minimal event emitter that works the same in browsers and Node. */
export class Emitter {
  constructor() { this._handlers = new Map(); }
  on(name, fn) {
    if (typeof fn !== 'function') throw new InvalidInputError(`on(${name}): handler must be a function`);
    if (!this._handlers.has(name)) this._handlers.set(name, []);
    this._handlers.get(name).push(fn);
    return this;
  }
  off(name, fn) {
    const hs = this._handlers.get(name);
    if (hs) this._handlers.set(name, hs.filter((h) => h !== fn));
    return this;
  }
  emit(name, ...args) {
    for (const h of this._handlers.get(name) ?? []) {
      try { h(...args); } catch (err) {
        // a throwing user handler must not break the client's state machine
        if (name !== 'handler_error') this.emit('handler_error', err, name);
      }
    }
  }
}

/** The real clock; tests inject their own. */
export const systemClock = Object.freeze({
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id),
});

/**
 * Exponential backoff with full jitter: attempt k waits uniformly in [0, min(maxMs, baseMs * 2^k)].
 * Ceilings 1, 2, 4, 8, 16, 32, 60 s with the defaults.
 */
export class Backoff {
  constructor({ baseMs = 1000, maxMs = 60000, random = Math.random } = {}) {
    if (!(baseMs > 0) || !(maxMs >= baseMs)) {
      throw new InvalidInputError(`backoff: need 0 < baseMs <= maxMs, got baseMs=${baseMs} maxMs=${maxMs}`);
    }
    this.baseMs = baseMs; this.maxMs = maxMs; this.random = random;
  }
  ceiling(attempt) { return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(attempt, 52)); }
  delay(attempt) { return this.random() * this.ceiling(attempt); }
}

/**
 * Circuit breaker over connection attempts: `failureThreshold` consecutive failures open it; after
 * `cooldownMs` it lets one probe through (half-open); a success closes it, a failure reopens it.
 */
export class CircuitBreaker {
  constructor({ failureThreshold = 5, cooldownMs = 30000, clock = systemClock, onChange = () => {} } = {}) {
    if (!(Number.isInteger(failureThreshold) && failureThreshold >= 1)) {
      throw new InvalidInputError(`circuitBreaker.failureThreshold must be an integer >= 1, got ${failureThreshold}`);
    }
    if (!(cooldownMs >= 0)) throw new InvalidInputError(`circuitBreaker.cooldownMs must be >= 0, got ${cooldownMs}`);
    this.failureThreshold = failureThreshold; this.cooldownMs = cooldownMs;
    this.clock = clock; this.onChange = onChange;
    this.state = 'closed'; this.failures = 0; this.openedAt = 0;
  }
  _set(state) { if (state !== this.state) { this.state = state; this.onChange(state); } }
  /** Milliseconds until an attempt is allowed (0: now). Moves open -> half_open after the cool-down. */
  waitMs() {
    if (this.state !== 'open') return 0;
    const left = this.openedAt + this.cooldownMs - this.clock.now();
    if (left > 0) return left;
    this._set('half_open');
    return 0;
  }
  success() { this.failures = 0; this._set('closed'); }
  failure() {
    this.failures += 1;
    if (this.state === 'half_open' || this.failures >= this.failureThreshold) {
      this.openedAt = this.clock.now();
      this._set('open');
    }
  }
}

/**
 * Delivers each event of the buyer's stream once: remembers the highest seq delivered and drops
 * anything at or below it (replays overlapping what was already seen). Events outside the
 * stream (seq 0) always pass.
 */
export class ReplayTracker {
  constructor(lastSeq = 0) { this.lastSeq = lastSeq; this.duplicates = 0; }
  accept(seq) {
    if (seq === 0) return true;
    if (seq <= this.lastSeq) { this.duplicates += 1; return false; }
    this.lastSeq = seq;
    return true;
  }
}

function idBytes(s) { return new TextEncoder().encode(s).length; }

function checkId(what, v) {
  if (typeof v !== 'string' || v.length === 0) throw new InvalidInputError(`${what} must be a non-empty string, got ${JSON.stringify(v)}`);
  if (idBytes(v) > MAX_ID_BYTES) throw new InvalidInputError(`${what} must be at most ${MAX_ID_BYTES} bytes, got ${idBytes(v)}`);
  if (!/^[\x20-\x7e]+$/.test(v)) throw new InvalidInputError(`${what} must be printable ASCII, got ${JSON.stringify(v)}`);
}

/** Amount in currency units (2.5) or micros (amountMicros) -> integer micros, checked. */
function toMicros(what, amount, amountMicros) {
  let micros;
  if (amountMicros !== undefined) {
    if (typeof amountMicros === 'bigint') amountMicros = Number(amountMicros);
    if (!Number.isSafeInteger(amountMicros)) throw new InvalidInputError(`${what}Micros must be an integer, got ${amountMicros}`);
    micros = amountMicros;
  } else {
    if (typeof amount !== 'number' || !Number.isFinite(amount)) {
      throw new InvalidInputError(`${what} must be a finite number, got ${amount}`);
    }
    micros = Math.round(amount * 1e6);
  }
  if (!(micros > 0)) throw new InvalidInputError(`${what} must be > 0, got ${amountMicros ?? amount}`);
  if (micros > MAX_MICROS) throw new InvalidInputError(`${what} must be at most ${MAX_MICROS / 1e6}, got ${micros / 1e6}`);
  return micros;
}

function toDuration(what, seconds) {
  if (seconds === undefined || seconds === null) return undefined;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0) {
    throw new InvalidInputError(`${what} must be a positive number of seconds, got ${seconds}`);
  }
  return `${seconds}s`;
}

function money(micros, currency) {
  const m = { micros: String(micros) };
  if (currency) m.currency = currency;
  return m;
}

/** A server event (canonical JSON BidEvent) -> the flat object users see. */
export function normalizeEvent(raw) {
  const kind = Object.keys(EVENT_KINDS).find((k) => k in raw);
  const body = kind ? raw[kind] : {};
  const ev = {
    type: kind ? EVENT_KINDS[kind] : 'unknown',
    seq: Number(raw.seq ?? 0),
    eventId: raw.eventId ?? '',
    timestamp: raw.timestamp ?? '',
    requestId: raw.requestId ?? '',
    ...body,
  };
  if (ev.auctionId !== undefined) ev.callId = ev.auctionId;
  for (const f of ['amount', 'price', 'minToWin', 'floor']) {
    if (ev[f] && typeof ev[f] === 'object') {
      ev[f] = { currency: ev[f].currency ?? '', micros: Number(ev[f].micros ?? 0) };
    }
  }
  ev.raw = raw;
  return ev;
}

/**
 * The durable subscription of the buyer: emits 'event' for every event of the stream, and is an
 * async iterable of them (`for await (const ev of subscription)`). Events that arrive before the
 * first 'event' handler or iterator are kept for it, so none is missed between `subscribe()`
 * resolving and the reader being attached (past `maxQueue` waiting events: counted and told, as
 * for a slow iterator). When the client's own 'event' handlers receive the stream, only the
 * last `maxQueue` are kept.
 */
export class Subscription extends Emitter {
  constructor(client, eventTypes, filters) {
    super();
    this.client = client; this.eventTypes = eventTypes; this.filters = filters;
    this.ack = null;
    this._backlog = [];
    this._consumed = false; // a handler or an iterator took the stream
    this._flushing = false; // the backlog is being handed to the first handler
    this._queue = null; // the iterator's queue
    this._wake = null;
    this._full = false;
    this._ended = false;
  }

  on(name, fn) {
    super.on(name, fn);
    if (name === 'event' && !this._consumed) {
      this._consumed = true;
      if (this._backlog.length) { this._flushing = true; queueMicrotask(() => this._flush()); }
    }
    return this;
  }

  _flush() {
    while (this._backlog.length) {
      const ev = this._backlog.shift();
      this.emit('event', ev);
      if (this._queue) this._push(ev);
    }
    this._flushing = false;
    this._full = false;
  }

  _deliver(ev) {
    if (this._flushing) { this._backlog.push(ev); return; }
    if (!this._consumed) {
      if (this.client._handlers.get('event')?.length) {
        // the client's own handlers already have it: a bounded courtesy copy for a late reader
        this._backlog.push(ev);
        if (this._backlog.length > this.client.maxQueue) this._backlog.shift();
      } else {
        this._full = this._noteFull(this._backlog.length);
        this._backlog.push(ev);
      }
      return;
    }
    this.emit('event', ev);
    if (this._queue) this._push(ev);
  }

  /** Counts an event that finds `queued` events waiting at the limit; tells once per episode. */
  _noteFull(queued) {
    if (queued < this.client.maxQueue) return this._full;
    // the platform WebSocket cannot pause reading: the event is kept anyway (nothing is
    // dropped), counted, and the application told
    this.client.stats.queue_full += 1;
    if (!this._full) this.client.emit('backpressure', { queued });
    return true;
  }

  _push(ev) {
    this._full = this._noteFull(this._queue.length);
    this._queue.push(ev);
    if (this._wake) { const w = this._wake; this._wake = null; w(); }
  }

  _end() {
    this._ended = true;
    if (this._wake) { const w = this._wake; this._wake = null; w(); }
  }

  /** The stream as an async iterator; it ends when the client is closed or the loop is left. */
  events() {
    if (this._queue) throw new InvalidInputError('subscription.events(): the stream has one iterator already');
    this._queue = [];
    if (!this._flushing) { this._queue.push(...this._backlog); this._backlog = []; }
    this._consumed = true;
    const self = this;
    const queue = this._queue;
    const finished = () => ({ value: undefined, done: true });
    return {
      [Symbol.asyncIterator]() { return this; },
      async next() {
        for (;;) {
          if (self._queue !== queue) return finished(); // left by return()
          if (queue.length) {
            const value = queue.shift();
            if (queue.length < self.client.maxQueue / 2) self._full = false;
            return { value, done: false };
          }
          if (self._ended) return finished();
          await new Promise((r) => { self._wake = r; });
        }
      },
      // leaving the loop (break, return, throw) stops the queueing; handlers keep receiving
      async return() {
        if (self._queue === queue) { self._queue = null; self._full = false; }
        return finished();
      },
    };
  }

  /** How many events wait in the iterator's queue. */
  get queued() { return this._queue ? this._queue.length : this._backlog.length; }

  [Symbol.asyncIterator]() { return this.events(); }
}

/**
 * A bidding client. Events: 'event' (every event of the buyer's stream, once), 'connect',
 * 'disconnect' ({code, reason}), 'reconnect' ({attempt}), 'circuit_open', 'circuit_half_open',
 * 'circuit_closed', 'error' (Error), 'handler_error' (a user handler threw).
 */
export class BiddingClient extends Emitter {
  /**
   * @param {object} opts see index.d.ts (BiddingClientOptions)
   */
  constructor(opts = {}) {
    super();
    const { url, apiKey, token, reconnect = ReconnectStrategy.EXPONENTIAL_BACKOFF } = opts;
    if (typeof url !== 'string' || !/^wss?:\/\//.test(url)) {
      throw new InvalidInputError(`url must be a ws:// or wss:// URL, got ${JSON.stringify(url)}`);
    }
    if (!apiKey === !token) throw new InvalidInputError('exactly one of apiKey and token is required');
    if (!Object.values(ReconnectStrategy).includes(reconnect)) {
      throw new InvalidInputError(`reconnect must be one of ${Object.values(ReconnectStrategy).join(', ')}, got ${reconnect}`);
    }
    this.url = url;
    this.credential = apiKey ? { apiKey } : { token };
    this.reconnect = reconnect;
    this.clock = opts.clock ?? systemClock;
    this.backoff = new Backoff({ ...opts.backoff, random: opts.random ?? Math.random });
    this.breaker = new CircuitBreaker({
      ...opts.circuitBreaker, clock: this.clock,
      onChange: (s) => this.emit(s === 'half_open' ? 'circuit_half_open' : `circuit_${s}`, { state: s }),
    });
    this.WebSocket = opts.WebSocket ?? globalThis.WebSocket;
    if (typeof this.WebSocket !== 'function') {
      throw new InvalidInputError('no WebSocket implementation: Node 20 needs --experimental-websocket, or pass opts.WebSocket');
    }
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10000;
    // browsers hide protocol pings, so health is checked with an application round trip
    this.healthIntervalMs = opts.healthIntervalMs ?? 15000;
    this.healthTimeoutMs = opts.healthTimeoutMs ?? 10000;
    this.maxQueue = opts.maxQueue ?? 10000;
    if (!(Number.isInteger(this.maxQueue) && this.maxQueue >= 1)) throw new InvalidInputError(`maxQueue must be an integer >= 1, got ${opts.maxQueue}`);
    /** Counters (see STAT_NAMES). */
    this.stats = Object.fromEntries(STAT_NAMES.map((n) => [n, 0]));
    this.accepted = new Map(); // auctionId -> its bid_accepted event
    this.tracker = new ReplayTracker(opts.lastSeq ?? 0);
    this.ws = null;
    this.state = 'idle'; // idle | connecting | open | waiting | closed
    this.attempt = 0;
    this.everConnected = false;
    this.subscription = null;
    this.pending = new Map(); // requestId -> {message, resolve, reject}
    this.nextId = 1;
    this.idPrefix = `${this.clock.now().toString(36)}-${Math.floor((opts.random ?? Math.random)() * 1e9).toString(36)}-`;
    this.auth = null;
    this.timers = new Set();
    this.lastRecv = 0;
    this.probeId = null;
    this._connectWaiters = [];
  }

  /** The circuit breaker's state: 'closed', 'open' or 'half_open'. */
  get circuitState() { return this.breaker.state; }
  /** The last seq delivered to the user (the replay point). */
  get lastSeq() { return this.tracker.lastSeq; }
  get connected() { return this.state === 'open'; }

  _timer(fn, ms) {
    const id = this.clock.setTimeout(() => { this.timers.delete(id); fn(); }, ms);
    this.timers.add(id);
    return id;
  }
  _clearTimer(id) { if (id !== null && id !== undefined) { this.clock.clearTimeout(id); this.timers.delete(id); } }

  /** Opens the connection and authenticates; resolves with the AuthResult event. */
  connect() {
    if (this.state === 'closed') return Promise.reject(new ConnectionError('client is closed'));
    if (this.state === 'open') return Promise.resolve(this.auth);
    const p = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
    if (this.state === 'idle') this._open();
    return p;
  }

  _settleConnect(err, value) {
    const ws = this._connectWaiters; this._connectWaiters = [];
    for (const w of ws) err ? w.reject(err) : w.resolve(value);
  }

  _open() {
    const wait = this.breaker.waitMs();
    if (wait > 0) { this.state = 'waiting'; this._timer(() => this._open(), wait); return; }
    this.state = 'connecting';
    let ws;
    try {
      ws = new this.WebSocket(this.url, [SUBPROTOCOL]);
    } catch (err) {
      this._attemptFailed(new ConnectionError(`cannot open ${this.url}: ${err.message}`));
      return;
    }
    this.ws = ws;
    let authed = false;
    const connectTimer = this._timer(() => {
      if (!authed && this.ws === ws) { try { ws.close(); } catch { /* already closing */ } this._lost(ws, 0, 'connect timeout'); }
    }, this.connectTimeoutMs);
    ws.onopen = () => {
      this._sendRaw(ws, [{ requestId: this._id(), auth: this.credential }]);
    };
    ws.onmessage = (msg) => {
      if (this.ws !== ws) return;
      this.lastRecv = this.clock.now();
      let frame;
      try { frame = JSON.parse(typeof msg.data === 'string' ? msg.data : new TextDecoder().decode(msg.data)); } catch (err) {
        this.emit('error', new ConnectionError(`undecodable frame from server: ${err.message}`));
        return;
      }
      for (const raw of frame.events ?? []) {
        const ev = normalizeEvent(raw);
        if (!authed) {
          if (ev.type === 'auth_result' && ev.ok) {
            authed = true;
            this._clearTimer(connectTimer);
            this._authenticated(ev);
          } else if (ev.type === 'auth_result') {
            this._clearTimer(connectTimer);
            this._fatal(new ConnectionError(`authentication failed: ${ev.message ?? ''}`, 4001));
            return;
          }
          continue;
        }
        this._dispatch(ev);
      }
    };
    ws.onclose = (e) => { this._clearTimer(connectTimer); this._lost(ws, e.code ?? 0, e.reason ?? ''); };
    // Node 20's WebSocket reports a refused connection with 'error' and no 'close'
    ws.onerror = () => { this._clearTimer(connectTimer); this._lost(ws, 1006, 'connection error'); };
  }

  _authenticated(ev) {
    const reconnected = this.everConnected;
    this.auth = ev;
    this.state = 'open';
    this.breaker.success();
    const attempt = this.attempt;
    this.attempt = 0;
    this.everConnected = true;
    // resume the stream first, then re-send what was not answered (same request ids: applied once)
    this.stats.connects += 1;
    if (reconnected) this.stats.reconnects += 1;
    const msgs = [];
    // a fresh request id: a repeated one would be answered from the idempotency window, unreplayed
    if (this.subscription) msgs.push(this._subscribeMessage(this.subscription, true, this._id()));
    for (const [, p] of this.pending) {
      if (p.message.subscribe) continue; // answered by the resumed subscription's ack
      if (p.sent) { p.resent = true; this.stats.requests_resent += 1; }
      p.sent = true;
      msgs.push(p.message);
    }
    if (msgs.length) this._sendRaw(this.ws, msgs);
    this._scheduleProbe();
    this._settleConnect(null, ev);
    this.emit('connect', ev);
    if (reconnected) this.emit('reconnect', { attempt, lastSeq: this.lastSeq });
  }

  _subscribeMessage(sub, replay, requestId) {
    const s = {};
    if (sub.eventTypes.length) s.eventTypes = sub.eventTypes;
    if (Object.keys(sub.filters).length) s.filters = sub.filters;
    if (replay) { s.replayMissed = true; s.sinceSeq = String(this.tracker.lastSeq); }
    return { requestId, subscribe: s };
  }

  _dispatch(ev) {
    if (this.probeId && ev.requestId === this.probeId) { this.probeId = null; return; }
    const p = ev.requestId ? this.pending.get(ev.requestId) : undefined;
    if (p) this._answer(ev.requestId, p, ev);
    if (ev.type === 'subscription_ack') {
      if (this.subscription) this.subscription.ack = ev;
      if (ev.truncated) {
        this.stats.replay_truncated += 1;
        this.emit('error', new ConnectionError(`the exchange's log no longer holds every event after seq ${this.lastSeq}: some were lost to this client`));
      }
      for (const [id, q] of this.pending) if (q.message.subscribe) { this.pending.delete(id); q.resolve(ev); }
      return;
    }
    if (ev.type === 'error') { this.emit('error', new ConnectionError(`server error ${ev.reason}: ${ev.message}`)); return; }
    if (ev.seq === 0) return;
    if (!this.tracker.accept(ev.seq)) { this.stats.duplicates += 1; return; }
    this.stats.events += 1;
    if (ev.type === 'bid_accepted' && ev.auctionId) {
      this.accepted.delete(ev.auctionId);
      this.accepted.set(ev.auctionId, ev);
      if (this.accepted.size > KNOWN_BIDS) this.accepted.delete(this.accepted.keys().next().value);
    }
    this.emit('event', ev);
    if (this.subscription) this.subscription._deliver(ev);
  }

  /** Settles the request an event answers. */
  _answer(requestId, p, ev) {
    if (ev.type === 'bid_rejected' && ev.reason === 'SHUTTING_DOWN' && this.reconnect !== ReconnectStrategy.NONE) {
      // a draining exchange refused it without applying anything: held, and re-sent under the
      // same id to the exchange that replaces it
      this.stats.held_while_draining += 1;
      return;
    }
    this.pending.delete(requestId);
    if (ev.type !== 'bid_rejected') { p.resolve(ev); return; }
    // a bid re-sent after the exchange restarted (its idempotency window lost) that meets its
    // own earlier bid: answered with that bid's acceptance, replayed from the stream
    const prior = p.resent && ev.reason === 'ALREADY_BID' ? this.accepted.get(p.message.placeBid?.auctionId) : undefined;
    if (prior) p.resolve(prior); else p.reject(new BidRejectedError(ev));
  }

  _scheduleProbe() {
    if (!(this.healthIntervalMs > 0)) return;
    const ws = this.ws;
    this._timer(() => {
      if (this.ws !== ws || this.state !== 'open') return;
      const idle = this.clock.now() - this.lastRecv;
      const probe = idle >= this.healthIntervalMs ? this._probeMessage() : null;
      if (probe) {
        this.probeId = probe.requestId;
        this._sendRaw(ws, [probe]);
        const sentAt = this.clock.now();
        this._timer(() => {
          if (this.ws === ws && this.lastRecv < sentAt) {
            this.emit('error', new ConnectionError(`no answer to the health probe within ${this.healthTimeoutMs} ms: reconnecting`));
            try { ws.close(); } catch { /* closing anyway */ }
            this._lost(ws, 0, 'stale');
          }
        }, this.healthTimeoutMs);
      }
      this._scheduleProbe();
    }, this.healthIntervalMs);
  }

  /**
   * A request that changes nothing and is always answered: the subscription repeated without
   * replay (a SubscriptionAck), or without a subscription a MetricsRequest when the credential
   * has the "metrics" scope. Null: nothing to probe with (the connection is only checked by
   * the platform).
   */
  _probeMessage() {
    const id = this._id();
    if (this.subscription) return this._subscribeMessage(this.subscription, false, id);
    if (this.auth?.scopes?.includes('metrics')) return { requestId: id, metrics: {} };
    return null;
  }

  _lost(ws, code, reason) {
    if (this.ws !== ws) return;
    this.ws = null;
    if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    if (wasOpen) this.emit('disconnect', { code, reason });
    if (code === 4001) { this._fatal(new ConnectionError('authentication failed', 4001)); return; }
    if (wasOpen) this.attempt = 0; else this._attemptFailedCount();
    if (this.reconnect === ReconnectStrategy.NONE) {
      this._fatal(new ConnectionError(`connection closed (${code} ${reason})`, code));
      return;
    }
    this.state = 'waiting';
    const delay = this.backoff.delay(this.attempt);
    this.attempt += 1;
    this._timer(() => { if (this.state === 'waiting') this._open(); }, delay);
  }

  _attemptFailedCount() { this.stats.failed_attempts += 1; this.breaker.failure(); }

  _attemptFailed(err) {
    this.emit('error', err);
    this.ws = null;
    this.state = 'connecting';
    this._lost(null, 0, err.message);
  }

  _fatal(err) {
    const ws = this.ws;
    this.state = 'closed';
    this.ws = null;
    if (ws) { ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null; try { ws.close(); } catch { /* ignore */ } }
    for (const id of this.timers) this.clock.clearTimeout(id);
    this.timers.clear();
    this._settleConnect(err);
    for (const [, p] of this.pending) p.reject(err);
    this.pending.clear();
    this.subscription?._end();
    this.emit('error', err);
  }

  _id() { return `${this.idPrefix}${this.nextId++}`; }

  _sendRaw(ws, messages) {
    if (ws && ws.readyState === 1) { ws.send(JSON.stringify({ messages })); this.stats.frames_sent += 1; }
  }

  /** Sends a request and resolves with its answering event; re-sent after a reconnect. */
  _request(message) {
    if (this.state === 'closed') return Promise.reject(new ConnectionError('client is closed'));
    if (this.state === 'idle') this.connect().catch(() => {});
    message.requestId = message.requestId ?? this._id();
    checkId('requestId', message.requestId);
    return new Promise((resolve, reject) => {
      const p = { message, resolve, reject, sent: false, resent: false };
      this.pending.set(message.requestId, p);
      if (this.state === 'open') { p.sent = true; this._sendRaw(this.ws, [message]); }
    });
  }

  /**
   * Sets the buyer's durable subscription; resolves with the Subscription once acknowledged.
   * After a reconnect the client re-subscribes with replay after the last seq it delivered.
   */
  async subscribe({ eventTypes = [], filters = {}, sinceSeq } = {}) {
    if (!Array.isArray(eventTypes)) throw new InvalidInputError('subscribe: eventTypes must be an array');
    for (const [i, t] of eventTypes.entries()) {
      if (!EVENT_TYPES.includes(t)) throw new InvalidInputError(`subscribe: eventTypes[${i}] ${JSON.stringify(t)} is not one of ${EVENT_TYPES.join(', ')}`);
    }
    if (filters === null || typeof filters !== 'object' || Array.isArray(filters)) throw new InvalidInputError('subscribe: filters must be an object');
    const f = {};
    for (const [k, v] of Object.entries(filters)) {
      if (!['string', 'number', 'boolean'].includes(typeof v)) throw new InvalidInputError(`subscribe: filters.${k} must be a string or number, got ${typeof v}`);
      f[k] = String(v);
    }
    if (sinceSeq !== undefined) {
      if (!Number.isSafeInteger(sinceSeq) || sinceSeq < 0) throw new InvalidInputError(`subscribe: sinceSeq must be an integer >= 0, got ${sinceSeq}`);
      this.tracker.lastSeq = sinceSeq;
    }
    const sub = new Subscription(this, [...eventTypes], f);
    sub.requestId = this._id();
    const msg = this._subscribeMessage(sub, sinceSeq !== undefined, sub.requestId);
    this.subscription = sub;
    sub.ack = await this._request(msg);
    return sub;
  }

  /** Places a bid; resolves with the BidAccepted event, rejects with BidRejectedError. */
  placeBid({ callId, auctionId, amount, amountMicros, currency, criteria, ttl, requestId } = {}) {
    const id = auctionId ?? callId;
    checkId('placeBid: callId', id);
    const micros = toMicros('placeBid: amount', amount, amountMicros);
    const pb = { auctionId: id, amount: money(micros, currency) };
    if (criteria !== undefined) {
      if (criteria === null || typeof criteria !== 'object' || Array.isArray(criteria)) throw new InvalidInputError('placeBid: criteria must be an object');
      pb.criteria = criteria;
    }
    const d = toDuration('placeBid: ttl', ttl);
    if (d) pb.ttl = d;
    if (requestId !== undefined) checkId('placeBid: requestId', requestId);
    return this._request({ requestId, placeBid: pb });
  }

  /** Changes a live bid's amount; resolves with the BidUpdate{UPDATED} event. */
  updateBid({ bidId, amount, amountMicros, currency, ttl, requestId } = {}) {
    checkId('updateBid: bidId', bidId);
    const micros = toMicros('updateBid: amount', amount, amountMicros);
    const ub = { bidId, amount: money(micros, currency) };
    const d = toDuration('updateBid: ttl', ttl);
    if (d) ub.ttl = d;
    if (requestId !== undefined) checkId('updateBid: requestId', requestId);
    return this._request({ requestId, updateBid: ub });
  }

  /** Withdraws a live bid; resolves with the BidUpdate{CANCELLED} event. */
  cancelBid({ bidId, requestId } = {}) {
    checkId('cancelBid: bidId', bidId);
    if (requestId !== undefined) checkId('cancelBid: requestId', requestId);
    return this._request({ requestId, cancelBid: { bidId } });
  }

  /** Opens an auction (scope "publish"); resolves with the AuctionOpened event. */
  openAuction({ auctionId, attributes = {}, floor, floorMicros, tmax, expectedBids = 0, requestId } = {}) {
    const oa = {};
    if (auctionId !== undefined) { checkId('openAuction: auctionId', auctionId); oa.auctionId = auctionId; }
    if (Object.keys(attributes).length) oa.attributes = Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, String(v)]));
    if (floor !== undefined || floorMicros !== undefined) oa.floor = money(toMicros('openAuction: floor', floor, floorMicros));
    const d = toDuration('openAuction: tmax', tmax);
    if (d) oa.tmax = d;
    if (!Number.isInteger(expectedBids) || expectedBids < 0) throw new InvalidInputError(`openAuction: expectedBids must be an integer >= 0, got ${expectedBids}`);
    if (expectedBids) oa.expectedBids = expectedBids;
    return this._request({ requestId, openAuction: oa });
  }

  /** Asks for the buyer's counters (scope "metrics"); resolves with the MetricsUpdate event. */
  metrics() { return this._request({ metrics: {} }); }

  /** Acknowledges the stream up to `seq` (default: the last delivered): the default replay start. */
  ack(seq = this.tracker.lastSeq) {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new InvalidInputError(`ack: seq must be an integer >= 0, got ${seq}`);
    if (this.state === 'open') this._sendRaw(this.ws, [{ ack: { seq: String(seq) } }]);
  }

  /** Closes the connection for good; pending requests reject with ConnectionError. */
  close() {
    if (this.state === 'closed') return;
    const ws = this.ws;
    this.state = 'closed';
    this.ws = null;
    for (const id of this.timers) this.clock.clearTimeout(id);
    this.timers.clear();
    if (ws) { ws.onopen = ws.onmessage = ws.onerror = null; ws.onclose = null; try { ws.close(1000); } catch { /* ignore */ } }
    const err = new ConnectionError('client closed');
    this._settleConnect(err);
    for (const [, p] of this.pending) p.reject(err);
    this.pending.clear();
    this.subscription?._end();
  }
}
