// Cross-origin isolation for static hosts that cannot set headers: this service worker re-serves
// every same-origin response of the app with the two headers that make the page cross-origin
// isolated (COOP + COEP), so the multi-threaded wasm build can share memory between its workers.
// www/app.js registers it and reloads once; `?threads=1` in the page's URL opts out. It lives at the
// top of the site because a service worker only controls pages at or below its own folder.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (new URL(request.url).origin !== self.location.origin) return; // the app loads nothing else
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
