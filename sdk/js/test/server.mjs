// Runs `rtbcore serve` for the tests: a keys file and exchange.toml in a temporary directory,
// port 0 (or a given port for restarts), the URL read from the "listening" line.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const RTBCORE_BIN = process.env.RTBCORE_BIN ?? join(REPO, '.venv/bin/rtbcore');

export const KEYS = {
  pub: ['key-pub', ['publish', 'subscribe', 'metrics']],
  acme: ['key-acme', ['bid', 'subscribe']],
  bolt: ['key-bolt', ['bid', 'subscribe']],
};

export function writeConfig(dir) {
  const keys = Object.entries(KEYS).map(([buyer, [key, scopes]]) =>
    `[[keys]]\nbuyer = "${buyer}"\nsha256 = "${createHash('sha256').update(key).digest('hex')}"\nscopes = ${JSON.stringify(scopes)}\n`);
  writeFileSync(join(dir, 'keys.toml'), keys.join('\n'));
  const cfg = join(dir, 'exchange.toml');
  writeFileSync(cfg, '[server]\nport = 0\nshutdown = "finish"\ndrain_timeout_s = 3\n'
    + '[auth]\nkeys_file = "keys.toml"\n[engine]\ntmax_ms = 200\n'
    + '[events]\npath = "events.ring"\nmax_records = 65536\n');
  return cfg;
}

/** Starts a server; resolves with {url, wsUrl, port, stop(), kill()}. */
export function startServer({ dir, port = 0 } = {}) {
  const own = !dir;
  dir = dir ?? mkdtempSync(join(tmpdir(), 'rtbcore-sdk-'));
  const cfg = writeConfig(dir);
  const proc = spawn(RTBCORE_BIN, ['serve', '--config', cfg, '--port', String(port)],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  let ready = false;
  return new Promise((res, rej) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); rej(new Error(`serve did not start: ${log}`)); }, 30000);
    proc.on('error', (e) => { clearTimeout(timer); rej(new Error(`cannot run ${RTBCORE_BIN}: ${e.message}`)); });
    proc.on('exit', (code) => { clearTimeout(timer); rej(new Error(`serve exited ${code}: ${log}`)); });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      log += d;
      const m = /rtbcore serve: listening on http:\/\/([\d.]+):(\d+)/.exec(log);
      if (m && !ready) {
        ready = true;
        clearTimeout(timer);
        proc.removeAllListeners('exit');
        const exited = new Promise((r) => proc.on('exit', (c, s) => r(c ?? s)));
        const srv = {
          dir, port: Number(m[2]), url: `http://${m[1]}:${m[2]}`, wsUrl: `ws://${m[1]}:${m[2]}/v1/bidding`,
          log: () => log,
          async stop(signal = 'SIGTERM') { if (proc.exitCode === null) proc.kill(signal); return exited; },
          async kill() { return srv.stop('SIGKILL'); },
          async cleanup() { await srv.stop(); if (own) rmSync(dir, { recursive: true, force: true }); },
        };
        res(srv);
      }
    });
  });
}
