// The app's service worker: cross-origin isolation and offline use.
//
// Isolation, for static hosts that cannot set headers: the app's own files are served with the two
// headers that make the page cross-origin isolated (COOP + COEP), so the multi-threaded wasm build
// can share memory between its workers. www/isolation.js registers this worker with the app's
// folder (where index.html is) as its scope and reloads once. Only the app's files are touched:
// the page itself (the folder, index.html), manifest.webmanifest, www/ and pkg/. Every other
// request in the folder (other pages, bundles) goes to the network untouched, and pages outside
// the folder are never under it. A navigation with `?threads=1` gets no headers (the page then
// unregisters this worker).
//
// Offline: app-files.json (written by scripts/build_wasm.sh: every app file with its sha256, and a
// version that is the hash of that list) names what the app is made of. At install, the page's
// files (index.html, the manifest, www/) are downloaded, checked against their sha256 and kept in
// the cache `clipmatch-app-<version>`; the wasm packages (pkg/, several MB each, only one of which
// a visit needs) are kept there when first used, also checked. From then on the app's files come
// from that cache, so the app opens with no network; the model and the catalog are kept by the
// page itself (www/loader.js, by sha256), and bundle.json by URL. Each navigation asks for
// app-files.json in the background: when its version is new, the whole new set of page files is
// downloaded and checked into a new cache, and the next navigation opens the new version. A page
// keeps the version it was opened with for all its files (never a mix of old and new); an old
// version's cache is deleted once no page uses it. Without app-files.json (or when a file does not
// match it) nothing is kept, and the app works from the network as before.
//
// Kill switch: deploy isolation-sw-off.js under this file's name; browsers that have this worker
// replace it with that one at their next visit, and it removes itself and its caches.

const APP = new URL(self.registration.scope);
const APP_FOLDERS = ['www/', 'pkg/'];
const LIST = new URL('app-files.json', APP).href;
const CACHE_PREFIX = 'clipmatch-app-';
/** Files kept at install (the rest of the list, pkg/, when first used). */
const AT_INSTALL = (path) => !path.startsWith('pkg/');
/** Versions that failed a check, not tried again by this worker. */
const refused = new Set();

function isAppFile(url) {
  if (url.origin !== APP.origin || !url.pathname.startsWith(APP.pathname)) return false;
  const rest = url.pathname.slice(APP.pathname.length);
  return rest === '' || rest === 'index.html' || rest === 'manifest.webmanifest' || APP_FOLDERS.some((folder) => rest.startsWith(folder));
}

/** The file's path in the app, as app-files.json names it ('' is index.html). */
function appPath(url) {
  const rest = url.pathname.slice(APP.pathname.length);
  return rest === '' ? 'index.html' : decodeURIComponent(rest);
}

async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** app-files.json from the network, checked for its shape; null where absent or odd. */
async function fetchList() {
  try {
    const response = await fetch(LIST, { cache: 'no-store' });
    if (!response.ok) return null;
    const list = await response.json();
    const ok = list.format === 'clipmatch-app-files' && /^[0-9a-f]{64}$/.test(list.version) && Array.isArray(list.files)
      && list.files.every((f) => typeof f.path === 'string' && /^[0-9a-f]{64}$/.test(f.sha256) && !f.path.includes('..'));
    return ok ? list : null;
  } catch {
    return null;
  }
}

/** The response for `path` of `list` from the network, if its bytes are the listed ones. */
async function fetchChecked(list, path) {
  const entry = list.files.find((f) => f.path === path);
  if (!entry) return null;
  const response = await fetch(new URL(path, APP).href, { cache: 'no-store' });
  if (!response.ok) return null;
  const body = await response.arrayBuffer();
  if ((await sha256Hex(body)) !== entry.sha256) return null;
  // The server's headers are kept (its Content-Security-Policy above all: workers run under it).
  const headers = new Headers(response.headers);
  for (const name of ['content-encoding', 'content-length', 'transfer-encoding']) headers.delete(name);
  return new Response(body, { status: 200, headers });
}

/** Keeps a whole version's page files in its cache; false (and nothing kept) if any is missing or differs. */
async function keepVersion(list) {
  const name = CACHE_PREFIX + list.version;
  if (refused.has(list.version)) return false;
  if (await caches.has(name)) {
    const cache = await caches.open(name);
    if (await cache.match(LIST)) return true; // complete: the list goes in last
  }
  const cache = await caches.open(name);
  try {
    for (const f of list.files.filter((file) => AT_INSTALL(file.path))) {
      const response = await fetchChecked(list, f.path);
      if (!response) throw new Error(`${f.path} is not the file app-files.json lists`);
      await cache.put(new URL(f.path, APP).href, response);
    }
    await cache.put(LIST, new Response(JSON.stringify(list), { headers: { 'content-type': 'application/json' } }));
    return true;
  } catch (e) {
    console.warn(`clipmatch: the app is not kept for offline use: ${e.message || e}`);
    refused.add(list.version);
    await caches.delete(name);
    return false;
  }
}

/** The newest complete version kept, by the time its list was kept (the cache's insertion order). */
async function latestVersion() {
  const names = (await caches.keys()).filter((n) => n.startsWith(CACHE_PREFIX));
  for (const name of names.reverse()) {
    if (await (await caches.open(name)).match(LIST)) return name;
  }
  return null;
}

/** The version each page (client id) was opened with, and its workers' (see versionFor). */
const clientVersions = new Map();

async function versionFor(event) {
  const known = clientVersions.get(event.clientId);
  if (known && (await caches.has(known))) return known;
  return latestVersion();
}

/** Deletes the caches of versions no open page uses. */
async function dropUnused(keep) {
  const open = new Set((await self.clients.matchAll({ includeUncontrolled: true })).map((c) => c.id));
  for (const [id] of clientVersions) if (!open.has(id)) clientVersions.delete(id);
  const used = new Set([keep, ...clientVersions.values()]);
  for (const name of await caches.keys()) {
    if (name.startsWith(CACHE_PREFIX) && !used.has(name)) await caches.delete(name);
  }
}

/** In the background of a navigation: a newer app-files.json is kept whole for the next one. */
async function checkForUpdate() {
  const list = await fetchList();
  if (list && (await keepVersion(list))) await dropUnused(CACHE_PREFIX + list.version);
}

self.addEventListener('install', (event) => event.waitUntil((async () => {
  const list = await fetchList();
  if (list) await keepVersion(list);
  await self.skipWaiting();
})()));
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** `response` with COOP/COEP added. */
function withHeaders(response) {
  if (response.status === 0 || response.type === 'opaque') return response;
  const headers = new Headers(response.headers);
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

/** An app file from the page's version of the app, else the network (a pkg/ file is then kept, if it checks). */
async function appFile(event, url) {
  const request = event.request;
  const navigate = request.mode === 'navigate';
  const version = navigate ? await latestVersion() : await versionFor(event);
  if (navigate) event.waitUntil(checkForUpdate());
  const key = new URL(appPath(url), APP).href;
  if (version) {
    const cache = await caches.open(version);
    const remember = () => {
      if (navigate && event.resultingClientId) clientVersions.set(event.resultingClientId, version);
      // A worker's own requests come from its client id: it keeps its page's version.
      if (request.destination === 'worker' && event.resultingClientId) clientVersions.set(event.resultingClientId, version);
    };
    const kept = await cache.match(key);
    if (kept) { remember(); return withHeaders(kept); }
    const list = await (await cache.match(LIST))?.json();
    if (list && !AT_INSTALL(appPath(url))) {
      const checked = await fetchChecked(list, appPath(url)).catch(() => null);
      if (checked) {
        await cache.put(key, checked.clone());
        remember();
        return withHeaders(checked);
      }
    }
  }
  return withHeaders(await fetch(request));
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (!isAppFile(url) || request.method !== 'GET') return;
  if (request.mode === 'navigate' && url.searchParams.get('threads') === '1') return;
  if (request.cache === 'only-if-cached' && request.mode !== 'same-origin') return;
  event.respondWith(appFile(event, url));
});
