// The app's service worker (isolation-sw.js, next to index.html): cross-origin isolation for static
// hosts that cannot send COOP/COEP headers, and the app's files kept for offline use. It is
// registered with the app's folder as its scope, and adds the two headers only to the app's own
// files; where the page is not isolated yet, it reloads once under it. `?threads=1` unregisters
// it (and reloads once without it). Deploying isolation-sw-off.js as isolation-sw.js removes it
// from every browser that has it (see that file).

const APP_FOLDER = new URL('../', import.meta.url).href;
const SW_URL = new URL('../isolation-sw.js', import.meta.url).href;
const RELOAD_KEY = 'clipmatch-isolation-reload';
const TAKE_CONTROL_MS = 10_000;

export const singleThreadRequested = () => new URLSearchParams(location.search).get('threads') === '1';

/** Whether a registration is the isolation worker's (by script: the site's own workers are never touched). */
const ours = (registration) => [registration.active, registration.waiting, registration.installing].some((w) => w?.scriptURL === SW_URL);

/**
 * `?threads=1`: unregisters the isolation service worker. True when the page is reloading because
 * it was under it (the reload is not).
 */
export async function leaveIsolation() {
  if (!('serviceWorker' in navigator)) return false;
  sessionStorage.removeItem(RELOAD_KEY);
  const registrations = (await navigator.serviceWorker.getRegistrations()).filter(ours);
  await Promise.all(registrations.map((r) => r.unregister()));
  if (registrations.length > 0 && navigator.serviceWorker.controller?.scriptURL === SW_URL && self.crossOriginIsolated) {
    location.reload();
    return true;
  }
  return false;
}

/**
 * Resolves true once the isolation worker controls this page (a reload will then be isolated),
 * false if it removed itself (the kill switch) or did not take over within TAKE_CONTROL_MS.
 */
function takesControl(registration) {
  if (navigator.serviceWorker.controller) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (value) => {
      clearTimeout(timer);
      navigator.serviceWorker.removeEventListener('controllerchange', onChange);
      resolve(value);
    };
    const onChange = () => done(true);
    const timer = setTimeout(() => done(false), TAKE_CONTROL_MS);
    navigator.serviceWorker.addEventListener('controllerchange', onChange);
    const incoming = registration.installing || registration.waiting;
    if (incoming) incoming.addEventListener('statechange', () => { if (incoming.state === 'redundant') done(false); });
    // Already active but not controlling this page (e.g. after a hard reload): a reload brings it in.
    else if (registration.active) done(true);
  });
}

/**
 * Registers the app's service worker (offline use, and isolation where the host sends no COOP/COEP
 * headers) and, where the page is not isolated and could use threads, reloads once under it.
 * True when that reload is coming. `inUse()`: whether the shopper has already chosen a photo or
 * opened the camera, which a reload would lose: then this visit stays on one thread and the next
 * one is isolated.
 */
export async function isolateForThreads(inUse = () => false) {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return false;
  const isolate = !self.crossOriginIsolated && (navigator.hardwareConcurrency || 1) >= 2
    // Reload once per session: a page that is still not isolated after that stays on one thread.
    && !sessionStorage.getItem(RELOAD_KEY);
  let registration;
  try {
    // The site's own service worker for exactly this folder would be replaced by registering: never.
    const present = await navigator.serviceWorker.getRegistration(APP_FOLDER);
    if (present && present.scope === APP_FOLDER && !ours(present)) {
      console.warn(`clipmatch: one thread; the site's own service worker (${present.active?.scriptURL}) has this folder`);
      return false;
    }
    registration = await navigator.serviceWorker.register(SW_URL, { scope: APP_FOLDER, updateViaCache: 'none' });
  } catch (e) {
    console.warn('clipmatch: no service worker, so one thread and no offline use:', e);
    return false;
  }
  if (!isolate || !(await takesControl(registration))) return false;
  if (inUse()) {
    console.info('clipmatch: one thread on this visit (a photo was chosen before the reload to isolate it); the next visit uses threads');
    return false;
  }
  sessionStorage.setItem(RELOAD_KEY, '1');
  location.reload();
  return true;
}
