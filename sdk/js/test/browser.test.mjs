// The SDK in a real browser: headless Chromium (Debian's `chromium`) loads a page served by a
// small HTTP server on 127.0.0.1 that imports index.js, connects to a real `rtbcore serve`,
// subscribes, bids and sees the win; the exchange is then killed (kill -9) and restarted on the
// same port, and the page reconnects, resumes its stream and wins the next auction. The test
// drives Chromium over the DevTools protocol, reads the page's log back and keeps a screenshot
// in out/sdk-browser.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { readFileSync, mkdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BiddingClient } from '../index.js';
import { startServer, KEYS } from './server.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = resolve(HERE, '../../../out');
const CHROMIUM = process.env.CHROMIUM_BIN ?? 'chromium';

const PAGE = `<!doctype html><meta charset="utf-8"><title>rtbcore buyer</title>
<h1>rtbcore buyer</h1><pre id="log"></pre>
<script type="module">
import { BiddingClient } from './index.js';
const params = new URLSearchParams(location.search);
window.__log = []; window.__seqs = [];
const log = (line) => { window.__log.push(line); document.getElementById('log').textContent += line + '\\n'; };
const client = new BiddingClient({ url: params.get('ws'), apiKey: params.get('key'), backoff: { baseMs: 100, maxMs: 500 } });
client.on('error', (e) => log('error ' + e.message));
client.on('disconnect', () => log('disconnected'));
client.on('reconnect', () => log('reconnected after seq ' + client.lastSeq));
const auth = await client.connect();
log('connected ' + auth.buyerId);
const sub = await client.subscribe({ eventTypes: ['auction_started', 'auction_won', 'auction_lost'] });
log('subscribed');
sub.on('event', async (ev) => {
  window.__seqs.push(ev.seq);
  if (ev.type === 'auction_started') {
    log('announced ' + ev.callId);
    const acc = await client.placeBid({ callId: ev.callId, amount: 0.0025 });
    log('bid ' + acc.bidId + ' ' + acc.amount.micros);
  } else if (ev.type === 'auction_won') {
    log('won ' + ev.auctionId + ' ' + ev.bidId);
  }
});
</script>`;

/** A minimal DevTools protocol session over the platform WebSocket. */
async function devtools(wsUrl) {
  const ws = new WebSocket(wsUrl);
  await new Promise((res, rej) => { ws.onopen = res; ws.onerror = () => rej(new Error(`cannot reach ${wsUrl}`)); });
  let id = 0; const waiting = new Map();
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    const w = waiting.get(msg.id);
    if (w) { waiting.delete(msg.id); msg.error ? w.rej(new Error(JSON.stringify(msg.error))) : w.res(msg.result); }
  };
  return {
    send(method, params = {}) {
      const n = ++id;
      ws.send(JSON.stringify({ id: n, method, params }));
      return new Promise((res, rej) => waiting.set(n, { res, rej }));
    },
    close() { ws.close(); },
  };
}

test('headless Chromium: connect, subscribe, bid, win; survive an exchange restart', async () => {
  let srv = await startServer();
  const http = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/index.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(readFileSync(join(HERE, '../index.js')));
    } else if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(PAGE);
    } else { res.writeHead(404); res.end(); }
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  const profile = mkdtempSync(join(tmpdir(), 'rtbcore-chromium-'));
  // --no-sandbox: the tests may run as root, where Chromium's sandbox refuses to start
  const chrome = spawn(CHROMIUM, ['--headless=new', '--no-sandbox', '--disable-gpu', '--remote-debugging-port=0',
    `--user-data-dir=${profile}`, '--window-size=800,500', 'about:blank'],
    // its own process group, so that its helper processes are stopped with it
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const chromeExit = new Promise((r) => chrome.on('exit', r));
  const pub = new BiddingClient({ url: srv.wsUrl, apiKey: KEYS.pub[0], healthIntervalMs: 0 });
  let cdp;
  try {
    const endpoint = await new Promise((res, rej) => {
      let err = '';
      const t = setTimeout(() => rej(new Error(`chromium did not start: ${err}`)), 30000);
      chrome.on('error', (e) => { clearTimeout(t); rej(new Error(`cannot run ${CHROMIUM}: ${e.message}`)); });
      chrome.stderr.setEncoding('utf8');
      chrome.stderr.on('data', (d) => {
        err += d;
        const m = /DevTools listening on (ws:\/\/[^\s]+)/.exec(err);
        if (m) { clearTimeout(t); res(new URL(m[1])); }
      });
    });
    const targets = await (await fetch(`http://${endpoint.host}/json/list`)).json();
    const page = targets.find((t) => t.type === 'page');
    cdp = await devtools(page.webSocketDebuggerUrl);
    const { port } = http.address();
    const url = `http://127.0.0.1:${port}/?ws=${encodeURIComponent(srv.wsUrl)}&key=${encodeURIComponent(KEYS.acme[0])}`;
    await cdp.send('Page.navigate', { url });
    const pageLog = async () => (await cdp.send('Runtime.evaluate', { expression: 'JSON.stringify(window.__log ?? [])', returnByValue: true })).result.value;
    const until = async (pred, what) => {
      const deadline = Date.now() + 15000;
      for (;;) {
        const lines = JSON.parse(await pageLog());
        if (pred(lines)) return lines;
        if (Date.now() > deadline) throw new Error(`page never logged ${what}: ${JSON.stringify(lines)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until((l) => l.includes('subscribed'), 'subscribed');
    await pub.connect();
    await pub.openAuction({ auctionId: 'browser-1', expectedBids: 1, tmax: 5 });
    // the acceptance and the win can reach the page in one frame: the win's handler may then
    // log before the code awaiting placeBid resumes, so the two lines come in either order
    const bidAndWin = (l, auction) => l.some((x) => x.startsWith(`won ${auction} `))
      && l.slice(l.indexOf(`announced ${auction}`)).some((x) => x.startsWith('bid '));
    const lines = await until((l) => bidAndWin(l, 'browser-1'), 'a bid and a win');
    assert.equal(lines[0], 'connected acme');
    assert.equal(lines[1], 'subscribed');
    assert.equal(lines[2], 'announced browser-1');
    const outcome = lines.slice(3, 5).sort(); // 'bid ...' sorts before 'won ...'
    const [, bidId, micros] = outcome[0].split(' ');
    assert.equal(micros, '2500', lines.join('\n'));
    assert.equal(outcome[1], `won browser-1 ${bidId}`, lines.join('\n'));
    assert.ok(!lines.some((l) => l.startsWith('error')), lines.join('\n'));

    // kill -9 and a restart on the same port: the page reconnects, resumes and bids again
    const { dir, port: exchangePort } = srv;
    await srv.kill();
    await until((l) => l.includes('disconnected'), 'the disconnect');
    srv = await startServer({ dir, port: exchangePort });
    const back = await until((l) => l.some((x) => x.startsWith('reconnected')), 'the reconnect');
    const lastSeq = Number(back.find((x) => x.startsWith('reconnected')).split(' ').at(-1));
    const pub2 = new BiddingClient({ url: srv.wsUrl, apiKey: KEYS.pub[0], healthIntervalMs: 0 });
    try {
      await pub2.connect();
      await pub2.openAuction({ auctionId: 'browser-2', expectedBids: 1, tmax: 5 });
      const after = await until((l) => bidAndWin(l, 'browser-2'), 'a bid and a win after the restart');
      const tail = after.slice(after.indexOf('announced browser-2'));
      assert.equal(tail[0], 'announced browser-2', after.join('\n'));
      const outcome2 = tail.slice(1, 3).sort();
      const [, bid2] = outcome2[0].split(' ');
      assert.ok(outcome2[0].startsWith('bid '), after.join('\n'));
      assert.equal(outcome2[1], `won browser-2 ${bid2}`, after.join('\n'));
    } finally {
      pub2.close();
    }
    const seqs = JSON.parse((await cdp.send('Runtime.evaluate', { expression: 'JSON.stringify(window.__seqs)', returnByValue: true })).result.value);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((x, y) => x - y), 'a duplicate or out of order');
    assert.ok(seqs.length >= 4 && seqs.includes(lastSeq) && seqs.at(-1) > lastSeq, `seqs ${seqs} around ${lastSeq}`);
    // while the exchange was down the page may have logged failed attempts; nothing else
    const final = JSON.parse(await pageLog());
    assert.ok(!final.some((l) => /server error|undecodable|authentication/.test(l)), final.join('\n'));
    const shot = await cdp.send('Page.captureScreenshot', { format: 'png' });
    mkdirSync(OUT, { recursive: true });
    writeFileSync(join(OUT, 'sdk-browser.png'), Buffer.from(shot.data, 'base64'));
  } finally {
    cdp?.close();
    pub.close();
    chrome.kill('SIGTERM');
    await chromeExit;
    try {
      process.kill(-chrome.pid, 'SIGKILL'); // helpers still running (crash handler, zygote)
    } catch {
      // the group is gone already
    }
    http.close();
    // Chromium's helper processes may still write to the profile after the browser exits: retry,
    // and never let the clean-up hide the test's own failure
    try {
      rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    } catch (e) {
      console.error(`leaving ${profile}: ${e.message}`);
    }
    await srv.cleanup();
  }
});
