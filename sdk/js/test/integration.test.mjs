// Against a real `rtbcore serve` (RTBCORE_BIN, default <repo>/.venv/bin/rtbcore) on real sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BiddingClient, BidRejectedError, InvalidInputError } from '../index.js';
import { startServer, KEYS } from './server.mjs';

/** Collects a client's stream events; `next(pred)` waits for the first match not yet taken. */
function collector(target) {
  const events = [];
  const waiters = [];
  target.on('event', (ev) => {
    events.push(ev);
    for (const w of [...waiters]) if (w.pred(ev)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(ev); }
  });
  return {
    events,
    next(pred, ms = 5000) {
      const found = events.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        waiters.push(w);
        setTimeout(() => reject(new Error(`timed out; saw ${events.map((e) => e.type).join(',')}`)), ms);
      });
    },
  };
}

const client = (url, who, extra = {}) => new BiddingClient({
  url, apiKey: KEYS[who][0], backoff: { baseMs: 50, maxMs: 400 }, healthIntervalMs: 0, ...extra,
});

test('lifecycle: auth, subscribe, announcement, bid, win and loss, cancel, bad input', async () => {
  const srv = await startServer();
  const pub = client(srv.wsUrl, 'pub');
  const acme = client(srv.wsUrl, 'acme');
  const bolt = client(srv.wsUrl, 'bolt');
  try {
    const auth = await acme.connect();
    assert.equal(auth.buyerId, 'acme');
    assert.deepEqual([...auth.scopes].sort(), ['bid', 'subscribe']);
    await bolt.connect();
    await pub.connect();
    const a = collector(acme); const b = collector(bolt); const p = collector(pub);
    const sub = await acme.subscribe({ eventTypes: ['auction_started', 'auction_won', 'auction_lost', 'bid_update'], filters: { vertical: 'news' } });
    assert.deepEqual(sub.ack.eventTypes, ['auction_started', 'auction_won', 'auction_lost', 'bid_update']);
    await bolt.subscribe({ filters: { vertical: 'news' } });
    const seen = collector(sub);

    // filtered out for both buyers
    await pub.openAuction({ auctionId: 'sports-1', attributes: { vertical: 'sports' }, tmax: 0.3 });
    await pub.openAuction({ auctionId: 'news-1', attributes: { vertical: 'news' }, floor: 0.001, tmax: 5, expectedBids: 2 });
    const started = await seen.next((e) => e.type === 'auction_started');
    assert.equal(started.callId, 'news-1');
    assert.equal(started.floor.micros, 1000);
    await b.next((e) => e.type === 'auction_started' && e.auctionId === 'news-1');

    const accepted = await acme.placeBid({ callId: 'news-1', amount: 0.0025, criteria: { exclusive: true } });
    assert.equal(accepted.type, 'bid_accepted');
    assert.equal(accepted.amount.micros, 2500);
    await bolt.placeBid({ callId: 'news-1', amount: 0.002 });
    const won = await a.next((e) => e.type === 'auction_won');
    assert.equal(won.auctionId, 'news-1');
    assert.equal(won.bidId, accepted.bidId);
    assert.equal(won.price.micros, 2000, 'second price: the runner-up bid');
    const lost = await b.next((e) => e.type === 'auction_lost');
    assert.equal(lost.lossReason, 102);
    const closed = await p.next((e) => e.type === 'auction_closed' && e.auctionId === 'news-1');
    assert.equal(closed.winners[0].buyerId, 'acme');
    assert.equal(a.events.some((e) => e.auctionId === 'sports-1'), false, 'filtered announcement delivered');

    // cancel a bid before the auction closes
    await pub.openAuction({ auctionId: 'news-2', attributes: { vertical: 'news' }, tmax: 5 });
    await seen.next((e) => e.type === 'auction_started' && e.auctionId === 'news-2');
    const bid2 = await acme.placeBid({ callId: 'news-2', amount: 0.01 });
    const cancelled = await acme.cancelBid({ bidId: bid2.bidId });
    assert.equal(cancelled.type, 'bid_update');
    assert.equal(cancelled.status, 'CANCELLED');

    // server rejections are typed errors with the protocol's reason
    await assert.rejects(acme.placeBid({ callId: 'no-such-auction', amount: 1 }),
      (e) => e instanceof BidRejectedError && e.reason === 'UNKNOWN_AUCTION');
    await assert.rejects(acme.openAuction({ auctionId: 'x' }), (e) => e instanceof BidRejectedError && e.reason === 'FORBIDDEN');
    // local checks: nothing is sent
    assert.throws(() => acme.placeBid({ callId: 'news-2', amount: NaN }), InvalidInputError);
    assert.throws(() => acme.placeBid({ callId: 'news-2', amount: -1 }), /must be > 0/);
    await assert.rejects(acme.subscribe({ eventTypes: ['auction_begun'] }), /eventTypes\[0\]/);

    // idempotency: the same request id twice is applied once and answered with the same event
    await pub.openAuction({ auctionId: 'news-3', attributes: { vertical: 'news' }, tmax: 5 });
    await seen.next((e) => e.auctionId === 'news-3');
    const first = await acme.placeBid({ callId: 'news-3', amount: 0.01, requestId: 'bid-news-3' });
    const again = await acme.placeBid({ callId: 'news-3', amount: 0.01, requestId: 'bid-news-3' });
    assert.equal(again.seq, first.seq);
    assert.equal(again.bidId, first.bidId);

    // the user saw each seq once, increasing
    const seqs = a.events.map((e) => e.seq);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((x, y) => x - y));
  } finally {
    acme.close(); bolt.close(); pub.close();
    await srv.cleanup();
  }
});

test('server restart (SIGTERM and kill -9): reconnect, replay, no gap and no duplicate', async () => {
  let srv = await startServer();
  const { dir, port } = srv;
  const pub = client(srv.wsUrl, 'pub');
  // a breaker that tolerates the seconds a restart takes on a loaded machine (the default opens
  // after 5 failed attempts, about a second of refused connections at this backoff)
  const acme = client(srv.wsUrl, 'acme', { circuitBreaker: { failureThreshold: 1000, cooldownMs: 500 } });
  const disconnects = []; const reconnects = [];
  acme.on('disconnect', (d) => disconnects.push(d));
  acme.on('reconnect', (r) => reconnects.push(r));
  try {
    await acme.connect(); await pub.connect();
    const sub = await acme.subscribe({ eventTypes: ['auction_started'] });
    const seen = collector(sub);
    const open = async (id) => { await pub.openAuction({ auctionId: id, tmax: 30 }); };
    await open('r-1'); await open('r-2');
    await seen.next((e) => e.auctionId === 'r-2');

    for (const [round, sig] of [[1, 'SIGTERM'], [2, 'SIGKILL']]) {
      const gone = new Promise((r) => acme.on('disconnect', r));
      // SIGTERM drains (at most drain_timeout_s); SIGKILL leaves only the event log
      await srv.stop(sig);
      await gone;
      // listen before the restart: the client may reconnect before startServer returns
      const back = new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no reconnect')), 30000);
        acme.on('reconnect', () => { clearTimeout(t); resolve(); });
      });
      srv = await startServer({ dir, port });
      // the buyer reconnects (and replays) before anything new is announced
      await back;
      pub.close();
      const pub2 = client(srv.wsUrl, 'pub');
      await pub2.connect();
      await pub2.openAuction({ auctionId: `after-${round}`, tmax: 30 });
      await seen.next((e) => e.auctionId === `after-${round}`, 10000);
      pub2.close();
    }
    assert.ok(disconnects.length >= 2 && reconnects.length >= 2);
    const seqs = seen.events.map((e) => e.seq);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((x, y) => x - y), 'duplicate or out of order');
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `gap after seq ${seqs[i - 1]}`);
    assert.deepEqual(seen.events.map((e) => e.auctionId), ['r-1', 'r-2', 'after-1', 'after-2']);
  } finally {
    acme.close(); pub.close();
    await srv.cleanup();
  }
});

test('the example buyer wins an auction it is offered', async () => {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const srv = await startServer();
  const pub = client(srv.wsUrl, 'pub');
  try {
    const example = fileURLToPath(new URL('../examples/buyer.mjs', import.meta.url));
    const proc = spawn(process.execPath, ['--experimental-websocket', example, srv.wsUrl, KEYS.acme[0], '3'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.setEncoding('utf8');
    const exited = new Promise((r) => proc.on('exit', r));
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`example did not connect: ${out}`)), 10000);
      proc.stdout.on('data', (d) => { out += d; if (out.includes('connected as acme')) { clearTimeout(t); resolve(); } });
    });
    await new Promise((r) => setTimeout(r, 200)); // let the subscription land
    await pub.connect();
    await pub.openAuction({ auctionId: 'ex-1', expectedBids: 1, tmax: 2 });
    assert.equal(await exited, 0);
    assert.match(out, /won ex-1 at \d+ micros/);
  } finally {
    pub.close();
    await srv.cleanup();
  }
});

test('a slow iterator: counted and told (backpressure), and every event still arrives once, in order', async () => {
  const srv = await startServer();
  const pub = client(srv.wsUrl, 'pub');
  const acme = client(srv.wsUrl, 'acme', { maxQueue: 10 });
  const told = [];
  acme.on('backpressure', ({ queued }) => told.push(queued));
  try {
    await acme.connect(); await pub.connect();
    const sub = await acme.subscribe({ eventTypes: ['auction_started'] });
    for (let i = 0; i < 40; i++) await pub.openAuction({ auctionId: `q${i}`, tmax: 0.2 });
    const got = [];
    for await (const ev of sub) {
      got.push(ev.auctionId);
      if (got.length === 1) await new Promise((r) => setTimeout(r, 300)); // behind: the rest queue up
      if (got.length === 40) break;
    }
    assert.deepEqual(got, Array.from({ length: 40 }, (_, i) => `q${i}`));
    assert.ok(acme.stats.queue_full >= 1, JSON.stringify(acme.stats));
    assert.ok(told.length >= 1 && told[0] >= 10, `told ${told}`);
    assert.equal(acme.stats.events, 40);
    assert.equal(acme.stats.duplicates, 0);
    assert.equal(acme.stats.connects, 1);
  } finally {
    acme.close(); pub.close();
    await srv.cleanup();
  }
});
