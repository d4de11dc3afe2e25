// Downloads bundle files with byte-level progress, verifies their sha256, and keeps them in the
// Cache API keyed by that hash, so a second visit needs no network. Used by the worker (model,
// catalog, thumbnails). Where storage is refused or full, it says so once and carries on from
// memory. After a successful load, pruneCache() keeps only the current bundle's files.

const CACHE_NAME = 'clipmatch-files-v1';
const CACHE_PREFIX = 'clipmatch-'; // every cache this app has used or will use is named so
const APP_FILES_PREFIX = 'clipmatch-app-'; // ...but these are the service worker's (the app's own files), not bundles

/** The Cache API, or null with the reason (insecure context, storage disabled...). */
export async function openCache() {
  if (typeof caches === 'undefined') return { cache: null, reason: 'this page is not in a secure context (https or localhost)' };
  try {
    return { cache: await caches.open(CACHE_NAME), reason: null };
  } catch (e) {
    return { cache: null, reason: e.message || String(e) };
  }
}

/** The cache key of a file's content. */
function cacheKey(sha256) {
  // A synthetic same-origin URL: the Cache API needs a request; it is never fetched.
  return new Request(new URL(`/.clipmatch-cache/${sha256}`, self.location.origin).href);
}

async function sha256Hex(bytes) {
  if (!self.crypto?.subtle) return null;
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Whether the cache holds a file of the bundle ({sha256}) (fetchFile checks its size on reading). */
export async function isCached(cache, entry) {
  return Boolean(cache && (await cache.match(cacheKey(entry.sha256))));
}

/**
 * One file of the bundle: `entry` is {path, bytes, sha256} from bundle.json.
 * onProgress(received, total) is called as bytes arrive.
 * Returns {bytes: Uint8Array, fromCache: bool, verified: bool (sha256 checked, or cached after a
 * check), storageError: string|null}.
 */
export async function fetchFile(baseUrl, entry, cache, onProgress = () => {}) {
  if (cache) {
    const hit = await cache.match(cacheKey(entry.sha256));
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      if (bytes.length === entry.bytes) {
        onProgress(bytes.length, entry.bytes);
        return { bytes, fromCache: true, verified: true, storageError: null };
      }
    }
  }
  const url = new URL(entry.path, baseUrl);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot download ${entry.path}: HTTP ${response.status} ${response.statusText}`);
  const bytes = new Uint8Array(entry.bytes);
  let received = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (received + value.length > bytes.length) throw new Error(`${entry.path} is larger than bundle.json says (${entry.bytes} bytes): the bundle is inconsistent`);
    bytes.set(value, received);
    received += value.length;
    onProgress(received, entry.bytes);
  }
  if (received !== entry.bytes) throw new Error(`${entry.path} arrived with ${received} of ${entry.bytes} bytes: the download was cut off`);
  const hash = await sha256Hex(bytes);
  if (hash !== null && hash !== entry.sha256) throw new Error(`${entry.path} is damaged: its sha256 does not match bundle.json`);
  let storageError = null;
  if (cache) {
    try {
      await cache.put(cacheKey(entry.sha256), new Response(bytes, { headers: { 'content-type': 'application/octet-stream' } }));
    } catch (e) {
      storageError = e.message || String(e);
    }
  }
  return { bytes, fromCache: false, verified: hash !== null, storageError };
}

/**
 * Deletes every entry of the app's cache that is neither one of `files` (by sha256 key) nor one
 * of `keepUrls` (the current bundle.json), and every other cache named like the app's (older
 * versions; not the service worker's `clipmatch-app-` ones). Other applications' caches on the same origin are left alone.
 * Returns {deleted, kept} (entry counts) and {cachesDeleted} (names).
 */
export async function pruneCache(cache, files, keepUrls) {
  const keep = new Set([...files.map((f) => cacheKey(f.sha256).url), ...keepUrls]);
  let deleted = 0;
  let kept = 0;
  for (const request of await cache.keys()) {
    if (keep.has(request.url)) kept++;
    else if (await cache.delete(request)) deleted++;
  }
  const cachesDeleted = [];
  for (const name of await caches.keys()) {
    const older = name.startsWith(CACHE_PREFIX) && !name.startsWith(APP_FILES_PREFIX) && name !== CACHE_NAME;
    if (older && (await caches.delete(name))) cachesDeleted.push(name);
  }
  return { deleted, kept, cachesDeleted };
}
