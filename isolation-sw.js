// Cross-origin isolation for static hosts that cannot set headers: this service worker re-serves
// the app's own files with the two headers that make the page cross-origin isolated (COOP + COEP),
// so the multi-threaded wasm build can share memory between its workers.
//
// www/isolation.js registers it with the app's folder (where index.html is) as its scope and
// reloads once. Only the app's files get the headers: the page itself (the folder, index.html),
// www/ and pkg/. Every other request in the folder (other pages, bundles elsewhere) goes to the
// network untouched, and pages outside the folder are never under it. A navigation with
// `?threads=1` gets no headers (the page then unregisters this worker).
// Kill switch: deploy isolation-sw-off.js under this file's name; browsers that have this worker
// replace it with that one at their next visit, and it removes itself.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

const APP = new URL(self.registration.scope);
const APP_FOLDERS = ['www/', 'pkg/'];

function isAppFile(url) {
  if (url.origin !== APP.origin || !url.pathname.startsWith(APP.pathname)) return false;
  const rest = url.pathname.slice(APP.pathname.length);
  return rest === '' || rest === 'index.html' || APP_FOLDERS.some((folder) => rest.startsWith(folder));
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (!isAppFile(url)) return;
  if (request.mode === 'navigate' && url.searchParams.get('threads') === '1') return;
  if (request.cache === 'only-if-cached' && request.mode !== 'same-origin') return;
  event.respondWith((async () => {
    const response = await fetch(request);
    if (response.status === 0 || response.type === 'opaque') return response;
    const headers = new Headers(response.headers);
    headers.set('Cross-Origin-Opener-Policy', 'same-origin');
    headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  })());
});
