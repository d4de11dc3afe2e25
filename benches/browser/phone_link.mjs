// A static site behind a phone-like link, for the first-visit benchmark (first_visit.mjs):
//
// - `serveSite(dir)`: a static file server as a static host is (gzip for text and wasm when the
//   browser asks for it, as GitHub Pages, Netlify and jsDelivr do; model weights as they are),
//   with the page's Content-Security-Policy header (scripts/static_server.py's `--csp`);
// - `phoneLink(port, link)`: a TCP proxy in front of it that shapes every connection through one
//   shared down link and one shared up link (`rateMbit` each way: serialisation at the link's
//   rate, then `rttMs / 2` of propagation each way; a new connection waits one round trip for
//   its handshake) and counts the bytes each way.
//
// Chromium's own network throttling (DevTools emulation) does not reach a page's workers'
// fetches; shaping the connection itself does, for every file the page and its workers fetch.
import { readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';

const TYPES = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.json': 'application/json', '.webmanifest': 'application/manifest+json', '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.jpg': 'image/jpeg', '.webp': 'image/webp',
  '.safetensors': 'application/octet-stream', '.onnx': 'application/octet-stream', '.gz': 'application/gzip',
};
/** What static hosts compress: text and wasm, not images, weights or already-compressed files. */
const COMPRESSED = new Set(['.html', '.js', '.mjs', '.css', '.json', '.webmanifest', '.wasm', '.svg']);

/** The Content-Security-Policy of index.html's <meta> tag, sent as a header (as static_server.py --csp). */
function pagePolicy(root) {
  const page = readFileSync(path.join(root, 'index.html'), 'utf8');
  const m = /<meta http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(page);
  if (!m) throw new Error('index.html has no Content-Security-Policy <meta> tag');
  return m[1].replaceAll('&#39;', "'").replaceAll('&quot;', '"').replaceAll('&amp;', '&');
}

/**
 * Serves `dir` on 127.0.0.1 (a free port). `csp`: the repository root whose index.html's policy is
 * sent with every response, or null. Resolves with {port, close}.
 */
export function serveSite(dir, { csp = null } = {}) {
  const policy = csp ? pagePolicy(csp) : null;
  const gzipped = new Map();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    let file = path.join(dir, decodeURIComponent(url.pathname));
    if (!file.startsWith(dir)) { res.writeHead(403).end(); return; }
    try { if (statSync(file).isDirectory()) file = path.join(file, 'index.html'); } catch { res.writeHead(404).end(); return; }
    let body;
    try { body = readFileSync(file); } catch { res.writeHead(404).end(); return; }
    const ext = path.extname(file);
    const headers = { 'Content-Type': TYPES[ext] ?? 'application/octet-stream', 'Cache-Control': 'max-age=3600' };
    if (policy) headers['Content-Security-Policy'] = policy;
    if (COMPRESSED.has(ext) && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) {
      if (!gzipped.has(file)) gzipped.set(file, zlib.gzipSync(body, { level: 9 }));
      body = gzipped.get(file);
      headers['Content-Encoding'] = 'gzip';
      headers.Vary = 'Accept-Encoding';
    }
    headers['Content-Length'] = body.length;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ port: server.address().port, close: () => server.close() })));
}

/** One direction of the link: chunks leave at the link's rate, one after another, and arrive `delayMs` later. */
class Direction {
  constructor(rateMbit, delayMs) {
    this.bytesPerMs = (rateMbit * 1e6) / 8 / 1000;
    this.delayMs = delayMs;
    this.free = 0; // when the link has sent everything queued so far (ms, performance.now())
    this.bytes = 0;
  }

  /** Sends `chunk` to `socket` as the link would, not before `notBefore`, in order. */
  send(chunk, socket, notBefore = 0) {
    const PIECE = 16 * 1024;
    const queue = (socket.linkQueue ||= []);
    for (let at = 0; at < chunk.length; at += PIECE) {
      const piece = chunk.subarray(at, at + PIECE);
      const start = Math.max(performance.now(), this.free, notBefore);
      this.free = start + piece.length / this.bytesPerMs;
      this.bytes += piece.length;
      queue.push({ due: this.free + this.delayMs, piece });
    }
    if (!socket.linkTimer) deliver(socket);
  }
}

/** Writes a socket's due pieces, oldest first (one timer a socket: timers of different delays may fire out of order). */
function deliver(socket) {
  socket.linkTimer = null;
  const queue = socket.linkQueue;
  while (queue.length && queue[0].due <= performance.now()) {
    const { piece } = queue.shift();
    if (!socket.destroyed) socket.write(piece);
  }
  if (queue.length) socket.linkTimer = setTimeout(() => deliver(socket), Math.max(1, queue[0].due - performance.now()));
}

/**
 * A proxy on a free port forwarding to 127.0.0.1:`port` through the link `{rateMbit, rttMs}`
 * (both directions at `rateMbit`). Resolves with {port, bytes(): {down, up}, close}.
 */
export function phoneLink(port, { rateMbit, rttMs }) {
  const down = new Direction(rateMbit, rttMs / 2);
  const up = new Direction(rateMbit, rttMs / 2);
  const sockets = new Set();
  const proxy = net.createServer((client) => {
    const opened = performance.now();
    const server = net.connect(port, '127.0.0.1');
    sockets.add(client);
    sockets.add(server);
    // The handshake: nothing reaches the server before a round trip has passed.
    client.on('data', (d) => up.send(d, server, opened + rttMs));
    server.on('data', (d) => down.send(d, client));
    const endBoth = () => { client.destroy(); server.destroy(); sockets.delete(client); sockets.delete(server); };
    // Closed once both sides' queued pieces have arrived.
    const endLater = () => (client.linkQueue?.length || server.linkQueue?.length ? setTimeout(endLater, 20) : endBoth());
    client.on('error', endBoth);
    server.on('error', endBoth);
    client.on('end', endLater);
    server.on('end', endLater);
  });
  return new Promise((resolve) => proxy.listen(0, '127.0.0.1', () => resolve({
    port: proxy.address().port,
    bytes: () => ({ down: down.bytes, up: up.bytes }),
    close: () => { for (const s of sockets) s.destroy(); proxy.close(); },
  })));
}
