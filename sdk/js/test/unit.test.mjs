// Unit tests with an injected clock and a scripted WebSocket: no network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Backoff, CircuitBreaker, ReplayTracker, BiddingClient, InvalidInputError, ReconnectStrategy, BidRejectedError,
} from '../index.js';

/** A manual clock: timers fire only when advanced. */
class FakeClock {
  constructor() { this.t = 0; this.timers = new Map(); this.nextId = 1; }
  now() { return this.t; }
  setTimeout(fn, ms) { const id = this.nextId++; this.timers.set(id, { at: this.t + ms, fn }); return id; }
  clearTimeout(id) { this.timers.delete(id); }
  /** Runs due timers in time order until `ms` have passed. */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let best = null;
      for (const [id, tm] of this.timers) if (tm.at <= end && (!best || tm.at < best[1].at)) best = [id, tm];
      if (!best) break;
      this.timers.delete(best[0]);
      this.t = best[1].at;
      best[1].fn();
    }
    this.t = end;
  }
  nextDue() { return Math.min(...[...this.timers.values()].map((tm) => tm.at)); }
}

/** A WebSocket whose server side the test scripts; every instance is recorded. */
function fakeSocketClass(script) {
  const sockets = [];
  class FakeWS {
    constructor(url, protocols) {
      this.url = url; this.protocols = protocols; this.readyState = 0; this.sent = [];
      sockets.push(this);
      queueMicrotask(() => script(this));
    }
    send(data) { this.sent.push(JSON.parse(data)); this.onsend?.(JSON.parse(data)); }
    close() { this.readyState = 3; }
    // server side
    accept() { this.readyState = 1; this.onopen?.({}); }
    refuse() { this.readyState = 3; this.onerror?.({}); }
    drop(code = 1006) { this.readyState = 3; this.onclose?.({ code, reason: '' }); }
    deliver(...events) { this.onmessage?.({ data: JSON.stringify({ events }) }); }
  }
  return { FakeWS, sockets };
}

const authOk = (requestId) => ({ seq: '0', requestId, authResult: { ok: true, buyerId: 'acme', scopes: ['bid', 'subscribe'] } });
const started = (seq, id) => ({ seq: String(seq), eventId: `acme:${seq}`, auctionStarted: { auctionId: id } });
// a fake exchange that accepts the connection and answers auth and subscribe, nothing else
const answerAuthAndSubscribe = (ws) => {
  ws.onsend = (frame) => {
    for (const m of frame.messages) {
      if (m.auth) ws.deliver(authOk(m.requestId));
      if (m.subscribe) ws.deliver({ seq: '0', requestId: m.requestId, subscriptionAck: {} });
    }
  };
  ws.accept();
};
const tick = () => new Promise((r) => setImmediate(r));

test('backoff ceilings are 1, 2, 4, ... 60 s and each delay is uniform below its ceiling', () => {
  const b = new Backoff();
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 20].map((k) => b.ceiling(k)),
    [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  assert.equal(new Backoff({ random: () => 0 }).delay(3), 0);
  assert.equal(new Backoff({ random: () => 0.5 }).delay(3), 4000);
  assert.ok(new Backoff({ random: () => 0.999999 }).delay(10) < 60000);
  // full jitter: a seeded generator's delays spread over the whole interval
  let s = 42; const rnd = () => { s = (s * 1103515245 + 12345) % 2 ** 31; return s / 2 ** 31; };
  const jb = new Backoff({ random: rnd });
  const ds = Array.from({ length: 2000 }, () => jb.delay(2));
  assert.ok(ds.every((d) => d >= 0 && d < 4000));
  const quarters = [0, 1, 2, 3].map((q) => ds.filter((d) => d >= q * 1000 && d < (q + 1) * 1000).length);
  for (const n of quarters) assert.ok(n > 400 && n < 600, `quarter counts ${quarters}`);
  assert.throws(() => new Backoff({ baseMs: 0 }), InvalidInputError);
});

test('circuit breaker: opens after N failures, half-opens after the cool-down, closes on success', () => {
  const clock = new FakeClock(); const changes = [];
  const cb = new CircuitBreaker({ failureThreshold: 3, cooldownMs: 1000, clock, onChange: (s) => changes.push(s) });
  cb.failure(); cb.failure();
  assert.equal(cb.state, 'closed');
  cb.failure();
  assert.equal(cb.state, 'open');
  assert.equal(cb.waitMs(), 1000);
  clock.advance(999);
  assert.equal(cb.waitMs(), 1);
  clock.advance(1);
  assert.equal(cb.waitMs(), 0);
  assert.equal(cb.state, 'half_open');
  cb.failure(); // the probe failed: open again at once
  assert.equal(cb.state, 'open');
  clock.advance(1000); cb.waitMs();
  cb.success();
  assert.equal(cb.state, 'closed');
  assert.deepEqual(changes, ['open', 'half_open', 'open', 'half_open', 'closed']);
  assert.throws(() => new CircuitBreaker({ failureThreshold: 0 }), /failureThreshold/);
});

test('replay tracker delivers each seq once and always passes seq 0', () => {
  const t = new ReplayTracker();
  const delivered = [1, 2, 3, 2, 3, 4, 0, 4, 5, 1].filter((s) => t.accept(s));
  assert.deepEqual(delivered, [1, 2, 3, 4, 0, 5]);
  assert.equal(t.lastSeq, 5);
  assert.equal(t.duplicates, 4);
});

test('client: reconnects with jittered backoff, opens the circuit, replays from the last seq without duplicates', async () => {
  const clock = new FakeClock();
  let mode = 'ok';
  const { FakeWS, sockets } = fakeSocketClass((ws) => {
    if (mode === 'refuse') { ws.refuse(); return; }
    ws.onsend = (frame) => {
      for (const m of frame.messages) {
        if (m.auth) ws.deliver(authOk(m.requestId));
        if (m.subscribe) ws.deliver({ seq: '0', requestId: m.requestId, subscriptionAck: {} });
      }
    };
    ws.accept();
  });
  const client = new BiddingClient({
    url: 'ws://x/v1/bidding', apiKey: 'k', WebSocket: FakeWS, clock, random: () => 0.5,
    circuitBreaker: { failureThreshold: 3, cooldownMs: 5000 }, healthIntervalMs: 0,
  });
  const log = [];
  for (const name of ['disconnect', 'reconnect', 'circuit_open', 'circuit_half_open', 'circuit_closed']) client.on(name, () => log.push(name));
  client.on('error', () => {});
  await client.connect();
  const sub = await client.subscribe({ eventTypes: ['auction_started'] });
  const seen = []; sub.on('event', (e) => seen.push(e.seq));
  sockets[0].deliver(started(1, 'a1'), started(2, 'a2'));

  mode = 'refuse';
  sockets[0].drop();
  assert.equal(client.state, 'waiting');
  // attempt k waits random * ceiling(k) = 0.5 * 1000 * 2^k
  const waits = [];
  for (let k = 0; k < 3; k++) {
    const before = clock.now();
    const due = clock.nextDue();
    waits.push(due - before);
    clock.advance(due - before);
    await tick();
  }
  assert.deepEqual(waits, [500, 1000, 2000]);
  assert.equal(client.circuitState, 'open');
  mode = 'ok';
  clock.advance(clock.nextDue() - clock.now()); // backoff of attempt 3 (4000) is shorter than the cool-down
  await tick();
  assert.equal(client.circuitState, 'open', 'no attempt before the cool-down');
  assert.equal(sockets.length, 4);
  clock.advance(5000);
  await tick(); await tick();
  assert.equal(client.circuitState, 'closed');
  assert.equal(client.state, 'open');
  assert.deepEqual(log, ['disconnect', 'circuit_open', 'circuit_half_open', 'circuit_closed', 'reconnect']);

  // the re-subscription asks for replay after the last delivered seq, with a fresh request id
  const last = sockets.at(-1);
  const resub = last.sent.flatMap((f) => f.messages).find((m) => m.subscribe);
  assert.equal(resub.subscribe.replayMissed, true);
  assert.equal(resub.subscribe.sinceSeq, '2');
  assert.notEqual(resub.requestId, sub.requestId);
  // an overlapping replay (2 again) is delivered once
  last.deliver(started(2, 'a2'), started(3, 'a3'), started(4, 'a4'));
  assert.deepEqual(seen, [1, 2, 3, 4]);
  client.close();
});

test('client: a request unanswered before a disconnect is re-sent with the same request id', async () => {
  const clock = new FakeClock();
  let answerBids = false;
  const { FakeWS, sockets } = fakeSocketClass((ws) => {
    ws.onsend = (frame) => {
      for (const m of frame.messages) {
        if (m.auth) ws.deliver(authOk(m.requestId));
        if (m.placeBid && answerBids) ws.deliver({ seq: '7', requestId: m.requestId, bidAccepted: { bidId: 'b1', auctionId: 'a1', amount: { micros: '2500000' } } });
      }
    };
    ws.accept();
  });
  const client = new BiddingClient({ url: 'ws://x/v1/bidding', apiKey: 'k', WebSocket: FakeWS, clock, random: () => 0, healthIntervalMs: 0 });
  await client.connect();
  const p = client.placeBid({ callId: 'a1', amount: 2.5 });
  await tick();
  const sentId = sockets[0].sent[1].messages[0].requestId;
  assert.equal(sockets[0].sent[1].messages[0].placeBid.amount.micros, '2500000');
  answerBids = true;
  sockets[0].drop();
  clock.advance(0); await tick(); await tick();
  const accepted = await p;
  assert.equal(accepted.bidId, 'b1');
  assert.equal(sockets[1].sent[1].messages[0].requestId, sentId);
  client.close();
});

test('client: stale connection detected by the health probe', async () => {
  const clock = new FakeClock();
  let silent = false;
  const { FakeWS, sockets } = fakeSocketClass((ws) => {
    ws.onsend = (frame) => {
      for (const m of frame.messages) {
        if (m.auth) ws.deliver(authOk(m.requestId));
        if (m.subscribe && !silent) ws.deliver({ seq: '0', requestId: m.requestId, subscriptionAck: {} });
      }
    };
    ws.accept();
  });
  const client = new BiddingClient({ url: 'ws://x/v1/bidding', apiKey: 'k', WebSocket: FakeWS, clock, random: () => 0, healthIntervalMs: 1000, healthTimeoutMs: 500 });
  const errors = []; client.on('error', (e) => errors.push(e.message));
  await client.connect();
  await client.subscribe({});
  clock.advance(1000); // probe answered
  assert.equal(sockets.length, 1);
  silent = true;
  clock.advance(1000); clock.advance(500);
  assert.match(errors.join(';'), /health probe/);
  assert.equal(sockets.length, 2, 'reconnected after the stale probe');
  client.close();
});

test('bad input is refused locally with the field named', async () => {
  const clock = new FakeClock();
  const { FakeWS } = fakeSocketClass(() => {});
  assert.throws(() => new BiddingClient({ url: 'http://x', apiKey: 'k', WebSocket: FakeWS }), /url must be/);
  assert.throws(() => new BiddingClient({ url: 'ws://x', WebSocket: FakeWS }), /apiKey/);
  assert.throws(() => new BiddingClient({ url: 'ws://x', apiKey: 'k', reconnect: 'sometimes', WebSocket: FakeWS }), /reconnect must be/);
  const c = new BiddingClient({ url: 'ws://x', apiKey: 'k', WebSocket: FakeWS, clock, reconnect: ReconnectStrategy.NONE });
  assert.throws(() => c.placeBid({ callId: 'a', amount: NaN }), /placeBid: amount must be a finite number/);
  assert.throws(() => c.placeBid({ callId: 'a', amount: 0 }), /must be > 0/);
  assert.throws(() => c.placeBid({ callId: 'a', amount: 2e6 }), /at most/);
  assert.throws(() => c.placeBid({ callId: '', amount: 1 }), /callId must be a non-empty string/);
  assert.throws(() => c.placeBid({ callId: 'x'.repeat(65), amount: 1 }), /at most 64 bytes/);
  assert.throws(() => c.placeBid({ callId: 'a', amount: 1, ttl: -1 }), /ttl must be a positive/);
  await assert.rejects(c.subscribe({ eventTypes: ['auction_begun'] }), /eventTypes\[0\] "auction_begun"/);
  await assert.rejects(c.subscribe({ filters: { a: {} } }), /filters.a/);
  assert.throws(() => c.cancelBid({}), /cancelBid: bidId/);
  c.close();
});

test('client: a request a draining exchange refuses (SHUTTING_DOWN) is held and re-sent to its successor', async () => {
  const clock = new FakeClock();
  const { FakeWS, sockets } = fakeSocketClass((ws) => {
    const n = sockets.length;
    ws.onsend = (frame) => {
      for (const m of frame.messages) {
        if (m.auth) ws.deliver(authOk(m.requestId));
        if (m.placeBid && n === 1) ws.deliver({ seq: '0', requestId: m.requestId, bidRejected: { reason: 'SHUTTING_DOWN', auctionId: 'a1' } });
        if (m.placeBid && n === 2) ws.deliver({ seq: '1', requestId: m.requestId, bidAccepted: { bidId: 'b1', auctionId: 'a1' } });
      }
    };
    ws.accept();
  });
  const client = new BiddingClient({ url: 'ws://x/v1/bidding', apiKey: 'k', WebSocket: FakeWS, clock, random: () => 0, healthIntervalMs: 0 });
  await client.connect();
  let settled = false;
  const p = client.placeBid({ callId: 'a1', amount: 1 }).finally(() => { settled = true; });
  await tick(); await tick();
  assert.equal(settled, false, 'a SHUTTING_DOWN refusal must not reach the caller');
  assert.equal(client.stats.held_while_draining, 1);
  sockets[0].drop(1001);
  clock.advance(0); await tick(); await tick();
  const accepted = await p;
  assert.equal(accepted.bidId, 'b1');
  const ids = sockets.map((s) => s.sent.flatMap((f) => f.messages).find((m) => m.placeBid).requestId);
  assert.equal(ids[0], ids[1], 're-sent under the same request id');
  assert.equal(client.stats.requests_resent, 1);
  client.close();

  // without reconnection there is no successor: the refusal is the answer
  const { FakeWS: Once } = fakeSocketClass((ws) => {
    ws.onsend = (frame) => {
      for (const m of frame.messages) {
        if (m.auth) ws.deliver(authOk(m.requestId));
        if (m.placeBid) ws.deliver({ seq: '0', requestId: m.requestId, bidRejected: { reason: 'SHUTTING_DOWN', auctionId: 'a1' } });
      }
    };
    ws.accept();
  });
  const once = new BiddingClient({ url: 'ws://x/v1/bidding', apiKey: 'k', WebSocket: Once, clock, reconnect: ReconnectStrategy.NONE, healthIntervalMs: 0 });
  await once.connect();
  await assert.rejects(once.placeBid({ callId: 'a1', amount: 1 }), (e) => e instanceof BidRejectedError && e.reason === 'SHUTTING_DOWN');
  once.close();
});

test('client: a bid re-sent after a restart that meets its own bid (ALREADY_BID) resolves to the replayed acceptance', async () => {
  const clock = new FakeClock();
  const { FakeWS, sockets } = fakeSocketClass((ws) => {
    const n = sockets.length;
    ws.onsend = (frame) => {
      for (const m of frame.messages) {
        if (m.auth) ws.deliver(authOk(m.requestId));
        if (m.subscribe && n === 1) ws.deliver({ seq: '0', requestId: m.requestId, subscriptionAck: {} }, started(1, 'a1'));
        if (m.subscribe && n === 2) {
          assert.equal(m.subscribe.sinceSeq, '1');
          // the restarted exchange replays the acceptance the first connection never saw
          ws.deliver({ seq: '0', requestId: m.requestId, subscriptionAck: {} },
            { seq: '2', requestId: 'old', bidAccepted: { bidId: 'b1', auctionId: 'a1', amount: { micros: '1000000' } } });
        }
        if (m.placeBid && n === 1) ws.drop(); // applied, but the answer never leaves
        if (m.placeBid && n === 2) ws.deliver({ seq: '3', requestId: m.requestId, bidRejected: { reason: 'ALREADY_BID', auctionId: 'a1' } });
      }
    };
    ws.accept();
  });
  const client = new BiddingClient({ url: 'ws://x/v1/bidding', apiKey: 'k', WebSocket: FakeWS, clock, random: () => 0, healthIntervalMs: 0 });
  await client.connect();
  const sub = await client.subscribe({});
  const seen = []; sub.on('event', (e) => seen.push(`${e.seq}:${e.type}`));
  await tick();
  const p = client.placeBid({ callId: 'a1', amount: 1 });
  await tick();
  clock.advance(0); await tick(); await tick();
  const accepted = await p;
  assert.equal(accepted.type, 'bid_accepted');
  assert.equal(accepted.bidId, 'b1');
  assert.equal(accepted.seq, 2);
  assert.deepEqual(seen, ['1:auction_started', '2:bid_accepted', '3:bid_rejected']);
  assert.equal(client.stats.requests_resent, 1);
  // a first attempt refused ALREADY_BID is the caller's own second bid: it is an error
  sockets[1].onsend = (frame) => {
    for (const m of frame.messages) if (m.placeBid) sockets[1].deliver({ seq: '4', requestId: m.requestId, bidRejected: { reason: 'ALREADY_BID', auctionId: 'a1' } });
  };
  await assert.rejects(client.placeBid({ callId: 'a1', amount: 1 }), (e) => e instanceof BidRejectedError && e.reason === 'ALREADY_BID');
  client.close();
});

test('client: stats count connects, duplicates and failures; a slow iterator is told and loses nothing', async () => {
  const clock = new FakeClock();
  let refuse = false;
  const { FakeWS, sockets } = fakeSocketClass((ws) => {
    if (refuse) { ws.refuse(); return; }
    ws.onsend = (frame) => {
      for (const m of frame.messages) {
        if (m.auth) ws.deliver(authOk(m.requestId));
        if (m.subscribe) ws.deliver({ seq: '0', requestId: m.requestId, subscriptionAck: {} }, started(1, 'a1'));
      }
    };
    ws.accept();
  });
  const client = new BiddingClient({ url: 'ws://x/v1/bidding', apiKey: 'k', WebSocket: FakeWS, clock, random: () => 0, healthIntervalMs: 0, maxQueue: 4 });
  const told = []; client.on('backpressure', (b) => told.push(b.queued));
  client.on('error', () => {});
  await client.connect();
  const sub = await client.subscribe({});
  // seq 1 came in the frame of the ack, before any consumer: kept for the iterator
  const it = sub.events();
  for (let i = 2; i <= 10; i++) sockets[0].deliver(started(i, `a${i}`));
  assert.equal(sub.queued, 10);
  assert.equal(client.stats.queue_full, 6, 'events 5..10 found the queue full');
  assert.deepEqual(told, [4], 'told once per episode');
  refuse = true;
  sockets[0].drop();
  clock.advance(0); await tick();
  refuse = false;
  clock.advance(clock.nextDue() - clock.now()); await tick(); await tick();
  sockets.at(-1).deliver(started(10, 'a10'), started(11, 'a11')); // an overlapping replay
  const got = [];
  for await (const ev of it) { got.push(ev.seq); if (ev.seq === 11) break; }
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.deepEqual(
    { events: client.stats.events, duplicates: client.stats.duplicates, connects: client.stats.connects, reconnects: client.stats.reconnects, failed: client.stats.failed_attempts },
    { events: 11, duplicates: 2, connects: 2, reconnects: 1, failed: 1 });
  client.close();
});

test('client: without a subscription the health probe asks for the metrics (scope "metrics")', async () => {
  const clock = new FakeClock();
  let silent = false;
  const { FakeWS, sockets } = fakeSocketClass((ws) => {
    ws.onsend = (frame) => {
      for (const m of frame.messages) {
        if (m.auth) ws.deliver({ seq: '0', requestId: m.requestId, authResult: { ok: true, buyerId: 'pub', scopes: ['publish', 'metrics'] } });
        if (m.metrics && !silent) ws.deliver({ seq: '0', requestId: m.requestId, metricsUpdate: { metrics: {} } });
      }
    };
    ws.accept();
  });
  const client = new BiddingClient({ url: 'ws://x/v1/bidding', apiKey: 'k', WebSocket: FakeWS, clock, random: () => 0, healthIntervalMs: 1000, healthTimeoutMs: 500 });
  client.on('error', () => {});
  const seen = []; client.on('event', (e) => seen.push(e));
  await client.connect();
  clock.advance(1000); clock.advance(500); // probe answered
  assert.equal(sockets.length, 1);
  assert.ok(sockets[0].sent.flatMap((f) => f.messages).some((m) => m.metrics), 'a metrics probe');
  silent = true;
  clock.advance(1000); clock.advance(500);
  assert.equal(sockets.length, 2, 'reconnected after the unanswered probe');
  assert.deepEqual(seen, [], 'probe answers are not stream events');
  client.close();
});

test('client: a subscription read only through the client\'s own handlers keeps a bounded copy and reports nothing', async () => {
  const clock = new FakeClock();
  const { FakeWS, sockets } = fakeSocketClass(answerAuthAndSubscribe);
  const client = new BiddingClient({ url: 'ws://x/v1/bidding', apiKey: 'k', WebSocket: FakeWS, clock, healthIntervalMs: 0, maxQueue: 3 });
  const seen = []; client.on('event', (e) => seen.push(e.seq));
  const told = []; client.on('backpressure', (b) => told.push(b));
  await client.connect();
  const sub = await client.subscribe({});
  for (let i = 1; i <= 8; i++) sockets[0].deliver(started(i, `a${i}`));
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(sub.queued, 3);
  assert.deepEqual([client.stats.queue_full, told.length], [0, 0]);
  const late = []; sub.on('event', (e) => late.push(e.seq));
  await tick();
  assert.deepEqual(late, [6, 7, 8], 'the last maxQueue events, for a late handler');
  client.close();
});

test('client: leaving a for-await loop stops the queueing; a new iterator takes what follows', async () => {
  const clock = new FakeClock();
  const { FakeWS, sockets } = fakeSocketClass(answerAuthAndSubscribe);
  const client = new BiddingClient({ url: 'ws://x/v1/bidding', apiKey: 'k', WebSocket: FakeWS, clock, healthIntervalMs: 0, maxQueue: 2 });
  await client.connect();
  const sub = await client.subscribe({});
  sockets[0].deliver(started(1, 'a1'));
  for await (const ev of sub) { assert.equal(ev.seq, 1); break; }
  for (let i = 2; i <= 6; i++) sockets[0].deliver(started(i, `a${i}`));
  assert.equal(sub.queued, 0, 'nothing queued for a loop that was left');
  assert.equal(client.stats.queue_full, 0);
  const it = sub.events();
  sockets[0].deliver(started(7, 'a7'));
  assert.equal((await it.next()).value.seq, 7);
  client.close();
  assert.equal((await it.next()).done, true, 'the iterator ends with the client');
});
