// Kill switch for the app's service worker (isolation and offline use). To remove isolation-sw.js from every browser that
// installed it, publish THIS file's content as isolation-sw.js (same name, same place). A browser
// checks a registered service worker's script at each visit to a page under it (the page registers
// it with updateViaCache 'none', so no HTTP cache delays this); it then installs this version, which
// unregisters itself and reloads the pages it controlled, now without COOP/COEP. The app keeps
// working on one thread. Restore the real isolation-sw.js to turn isolation back on.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil((async () => {
  await self.registration.unregister();
  // The app's files it kept for offline use (isolation-sw.js names them so).
  for (const name of await caches.keys()) if (name.startsWith('clipmatch-app-')) await caches.delete(name);
  for (const client of await self.clients.matchAll({ type: 'window' })) client.navigate(client.url);
})()));
