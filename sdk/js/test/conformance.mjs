// The SDK conformance scenario's program (tests/test_sdk_conformance.py), the same script in every
// SDK. Usage: conformance.mjs URL BUYER_KEY PUBLISHER_KEY. A publisher opens an auction
// every 20 ms; a buyer subscribes to its whole stream and bids 1.0 on every announced auction.
// One JSON line per buyer stream event ({seq, type, auction}), per answered open ({opened, ok |
// rejected | error}) and per answered bid ({bid, accepted | rejected | error}). When stdin ends:
// stop publishing, wait until every opened auction was announced and every bid answered, print
// {done, stats, publisher_stats} and exit.
import { BiddingClient, BidRejectedError } from '../index.js';

const [url, buyerKey, publisherKey] = process.argv.slice(2);
const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const settle = (p, key, id, ok) => p.then(
  (ev) => out({ [key]: id, ...ok(ev) }),
  (err) => out(err instanceof BidRejectedError ? { [key]: id, rejected: err.reason } : { [key]: id, error: err.message }));
const opts = (apiKey) => ({
  url, apiKey, backoff: { baseMs: 50, maxMs: 400 }, circuitBreaker: { failureThreshold: 1000, cooldownMs: 500 },
  healthIntervalMs: 250, healthTimeoutMs: 750,
});
const buyer = new BiddingClient(opts(buyerKey));
const publisher = new BiddingClient(opts(publisherKey));
for (const c of [buyer, publisher]) c.on('error', (err) => process.stderr.write(`error: ${err.message}\n`));

const announced = new Set();
const opened = [];
const bids = [];
buyer.on('event', (ev) => {
  out({ seq: ev.seq, type: ev.type, auction: ev.auctionId ?? '' });
  if (ev.type !== 'auction_started') return;
  announced.add(ev.auctionId);
  bids.push(settle(buyer.placeBid({ callId: ev.auctionId, amount: 1.0 }), 'bid', ev.auctionId, (acc) => ({ accepted: acc.bidId })));
});
await buyer.connect();
await buyer.subscribe({});
await publisher.connect();
out({ ready: true });

let stopping = false;
const publishing = (async () => {
  for (let i = 0; !stopping; i++) {
    const id = `c${i}`;
    await settle(publisher.openAuction({ auctionId: id, tmax: 0.5 }), 'opened', id, () => ({ ok: true }));
    opened.push(id);
    await sleep(20);
  }
})();

process.stdin.resume();
process.stdin.on('end', async () => {
  stopping = true;
  await publishing;
  for (let waited = 0; waited < 30000 && !opened.every((id) => announced.has(id)); waited += 20) await sleep(20);
  await Promise.race([Promise.allSettled(bids), sleep(30000)]);
  out({ done: true, stats: buyer.stats, publisher_stats: publisher.stats });
  buyer.close(); publisher.close();
  process.exit(0);
});
