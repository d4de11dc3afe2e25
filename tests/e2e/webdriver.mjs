// A small W3C WebDriver client (plain HTTP + JSON, no dependency) for the browsers playwright-core
// cannot drive: Debian's Firefox ESR (geckodriver) and WebKitGTK (WebKitWebDriver, under an Xvfb
// display this module starts). `WebDriverPage` wraps a session in the part of playwright's Page
// API the shared helpers use (harness.mjs's upload, results, rankOnImagesOnly, crop.mjs's
// mouseDrag...), so the same assertions run in every engine. Selectors reach into open shadow
// roots, as playwright's do (the app lives in <clipmatch-search>'s).
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** A free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => { const { port } = server.address(); server.close(() => resolve(port)); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The W3C key of a web element in a response. */
const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

/** A WebDriver error: the driver's `error` code and message, in one line. */
export class WebDriverError extends Error {
  constructor(command, value) {
    super(`${command}: ${value?.error}: ${String(value?.message ?? '').split('\n')[0]}`);
    this.code = value?.error;
  }
}

/**
 * An Xvfb display (for WebKitGTK, which has no headless mode): `-displayfd` picks a free display
 * number. Resolves { display: ':N', stop() }.
 */
export function startXvfb() {
  const proc = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1600x4200x24', '-nolisten', 'tcp'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    proc.stdio[3].on('data', (d) => resolve({ display: `:${String(d).trim()}`, stop: () => proc.kill() }));
    proc.on('exit', (code) => reject(new Error(`Xvfb exited ${code}: ${stderr.trim()}`)));
  });
}

/** A driver process and one session on it. */
export class WebDriver {
  /**
   * Starts `command` (its `portArg(port)` arguments added) with `env`, waits until it answers,
   * opens a session with `capabilities` (alwaysMatch).
   */
  static async start({ command, portArg, env = process.env, capabilities }) {
    const port = await freePort();
    const proc = spawn(command, portArg(port), { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.stderr.on('data', (d) => { log = (log + d).slice(-4000); });
    const driver = new WebDriver(`http://127.0.0.1:${port}`, proc);
    try {
      for (let i = 0; ; i++) {
        if (proc.exitCode !== null) throw new Error(`${command} exited ${proc.exitCode}: ${log.trim()}`);
        try { if ((await driver.raw('GET', '/status')).ready !== undefined) break; } catch { /* not listening yet */ }
        if (i > 200) throw new Error(`${command} did not answer on port ${port}`);
        await sleep(100);
      }
      const session = await driver.raw('POST', '/session', { capabilities: { alwaysMatch: capabilities } });
      driver.session = `/session/${session.sessionId}`;
      driver.capabilities = session.capabilities;
      return driver;
    } catch (e) {
      proc.kill();
      throw e;
    }
  }

  constructor(url, proc) {
    this.url = url;
    this.proc = proc;
    this.session = '';
  }

  async raw(method, path, body) {
    const response = await fetch(this.url + path, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const json = await response.json();
    if (!response.ok) throw new WebDriverError(`${method} ${path}`, json.value);
    return json.value;
  }

  /** A command of the session: `path` is relative to it. */
  cmd(method, path, body) {
    return this.raw(method, this.session + path, body ?? (method === 'POST' ? {} : undefined));
  }

  /** Runs `fn(...args)` in the page (its source is sent; it may return a promise, which is awaited). */
  execute(fn, ...args) {
    return this.cmd('POST', '/execute/sync', { script: `return (${fn}).apply(null, arguments);`, args });
  }

  /**
   * Replaces the session's window with a popup window (no toolbars) of the same page and drives
   * that: a normal window keeps its toolbar's width at least (Firefox 500 px, MiniBrowser 447 px), a
   * popup can be phone-sized.
   */
  async usePopupWindow() {
    const [first] = await this.cmd('GET', '/window/handles');
    await this.execute(() => { window.open('about:blank', '', 'popup'); });
    const popup = (await this.cmd('GET', '/window/handles')).find((h) => h !== first);
    if (!popup) throw new Error('the popup window did not open');
    await this.cmd('DELETE', '/window');
    await this.cmd('POST', '/window', { handle: popup });
  }

  async quit() {
    try { if (this.session) await this.cmd('DELETE', ''); } catch { /* the browser may be gone */ }
    this.proc.kill();
    await new Promise((resolve) => { if (this.proc.exitCode !== null) resolve(); else this.proc.once('exit', resolve); setTimeout(resolve, 5000); });
  }
}

/**
 * In the page: every element matching `selector` in the document and in every open shadow root
 * under it (as playwright's CSS selectors pierce them). A string, so it can be sent with any script.
 */
const DEEP_QUERY = `function deepQuery(selector) {
  const found = [];
  const visit = (root) => {
    found.push(...root.querySelectorAll(selector));
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) visit(el.shadowRoot);
  };
  visit(document);
  return found;
}`;

/** Runs `fn(elements, arg)` on the elements `selector` finds (deep); `first`: on the first only, which must exist. */
function onElements(driver, selector, fn, arg, first) {
  const script = `${DEEP_QUERY}
    const [selector, arg, first] = arguments;
    const els = deepQuery(selector);
    if (first && !els.length) throw new Error('no element matches ' + selector);
    return (${fn})(first ? els[0] : els, arg);`;
  return driver.cmd('POST', '/execute/sync', { script, args: [selector, arg, first] });
}

/** The part of playwright's Page API the shared helpers use, on a WebDriver session. */
export class WebDriverPage {
  constructor(driver, { fullPageScreenshot = false } = {}) {
    this.driver = driver;
    this.fullPageScreenshot = fullPageScreenshot;
    this.mouse = new Mouse(driver);
    this.keyboard = new Keyboard(driver);
  }

  goto(url) { return this.driver.cmd('POST', '/url', { url }); }
  reload() { return this.driver.cmd('POST', '/refresh'); }
  currentUrl() { return this.driver.cmd('GET', '/url'); }
  evaluate(fn, arg) { return this.driver.execute(fn, arg); }
  $eval(selector, fn, arg) { return onElements(this.driver, selector, fn, arg, true); }
  $$eval(selector, fn, arg) { return onElements(this.driver, selector, fn, arg, false); }
  textContent(selector) { return this.$eval(selector, (e) => e.textContent); }
  getAttribute(selector, name) { return this.$eval(selector, (e, n) => e.getAttribute(n), name); }
  /** Visible as playwright means it: a non-empty box and not visibility: hidden. */
  isVisible(selector) {
    return this.$$eval(selector, (els) => {
      const e = els[0];
      if (!e) return false;
      const r = e.getBoundingClientRect();
      return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden';
    });
  }
  waitForTimeout(ms) { return sleep(ms); }

  /** Polls `fn(arg)` in the page until it is truthy; the page may be navigating meanwhile. */
  async waitForFunction(fn, arg, { timeout = 30_000 } = {}) {
    const until = Date.now() + timeout;
    let last;
    for (;;) {
      try { if (await this.driver.execute(fn, arg)) return; } catch (e) { last = e; }
      if (Date.now() > until) throw new Error(`waitForFunction: not true after ${timeout} ms: ${fn}${last ? ` (last error: ${last.message})` : ''}`);
      await sleep(100);
    }
  }

  /** Waits for an element matching `selector` (any of a comma-separated list), visible if `state` says so. */
  async waitForSelector(selector, { timeout = 30_000, state } = {}) {
    const until = Date.now() + timeout;
    for (;;) {
      try { if (state === 'visible' ? await this.isVisible(selector) : await this.$$eval(selector, (els) => els.length > 0)) return; } catch { /* navigating */ }
      if (Date.now() > until) throw new Error(`waitForSelector: no ${state ?? ''} ${selector} after ${timeout} ms`);
      await sleep(100);
    }
  }

  /** An element reference (for the element commands) of the first match of `selector`. */
  async element(selector) {
    const el = await onElements(this.driver, selector, (e) => e, undefined, true);
    if (!el?.[ELEMENT]) throw new Error(`no element reference for ${selector}: ${JSON.stringify(el)}`);
    return el[ELEMENT];
  }

  /**
   * Chooses `file` in a file input: WebDriver's Element Send Keys with the path (a local driver
   * reads it; no remote upload, which WebKitWebDriver lacks). The input may be hidden.
   */
  async setInputFiles(selector, file) {
    await this.driver.cmd('POST', `/element/${await this.element(selector)}/value`, { text: file });
  }

  /** A real click (WebDriver scrolls the element into view and clicks its centre). */
  async click(selector) {
    await this.driver.cmd('POST', `/element/${await this.element(selector)}/click`);
  }

  /** Sets an input's value and fires `input` and `change`, as playwright's fill does. */
  fill(selector, value) {
    return this.$eval(selector, (e, v) => { e.value = v; e.dispatchEvent(new Event('input', { bubbles: true })); e.dispatchEvent(new Event('change', { bubbles: true })); }, value);
  }

  dispatchEvent(selector, type) { return this.$eval(selector, (e, t) => e.dispatchEvent(new Event(t, { bubbles: true, composed: true })), type); }
  focus(selector) { return this.$eval(selector, (e) => e.focus()); }

  /**
   * Sizes the window so that the page's viewport is width x height CSS pixels (the browser's
   * frame, if any, is measured and added); returns the viewport it got.
   */
  async setViewportSize({ width, height }) {
    // The window may take a moment to get its new size (MiniBrowser): read until it holds still.
    const inner = async () => {
      let last = null;
      for (let i = 0; i < 20; i++) {
        const now = await this.evaluate(() => ({ width: window.innerWidth, height: window.innerHeight }));
        if (last && now.width === last.width && now.height === last.height) return now;
        last = now;
        await sleep(50);
      }
      return last;
    };
    await this.driver.cmd('POST', '/window/rect', { width, height });
    const got = await inner();
    if (got.width === width && got.height === height) return got;
    // The frame (toolbars, borders) is what the window has beyond the viewport.
    const frame = { width: Math.max(0, width - got.width), height: Math.max(0, height - got.height) };
    await this.driver.cmd('POST', '/window/rect', { width: width + frame.width, height: height + frame.height });
    return inner();
  }

  /**
   * A PNG of the viewport, or of the whole page: by geckodriver's extension, or elsewhere with the
   * window made as tall as the page for the shot.
   */
  async screenshot({ path, fullPage = false } = {}) {
    let png;
    if (fullPage && this.fullPageScreenshot) png = await this.driver.cmd('GET', '/moz/screenshot/full');
    else if (fullPage) {
      const size = await this.evaluate(() => ({ width: window.innerWidth, height: window.innerHeight, page: Math.min(document.documentElement.scrollHeight, 4000) }));
      if (size.page > size.height) {
        await this.setViewportSize({ width: size.width, height: size.page });
        // Painted at the new size before the shot (MiniBrowser showed black below the old one).
        await this.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
      }
      png = await this.driver.cmd('GET', '/screenshot');
      if (size.page > size.height) await this.setViewportSize(size);
    } else png = await this.driver.cmd('GET', '/screenshot');
    const bytes = Buffer.from(png, 'base64');
    if (path) writeFileSync(path, bytes);
    return bytes;
  }
}

/** playwright's page.mouse on W3C pointer actions (viewport coordinates). */
class Mouse {
  constructor(driver) { this.driver = driver; this.at = [0, 0]; }
  pointer(actions) {
    return this.driver.cmd('POST', '/actions', { actions: [{ type: 'pointer', id: 'mouse', parameters: { pointerType: 'mouse' }, actions }] });
  }
  async move(x, y, { steps = 1 } = {}) {
    const [x0, y0] = this.at;
    const moves = [];
    for (let i = 1; i <= steps; i++) moves.push({ type: 'pointerMove', origin: 'viewport', duration: 0, x: Math.round(x0 + ((x - x0) * i) / steps), y: Math.round(y0 + ((y - y0) * i) / steps) });
    this.at = [x, y];
    await this.pointer(moves);
  }
  down() { return this.pointer([{ type: 'pointerDown', button: 0 }]); }
  up() { return this.pointer([{ type: 'pointerUp', button: 0 }]); }
}

/** playwright's page.keyboard.press for single keys and Shift+key, on W3C key actions. */
class Keyboard {
  constructor(driver) { this.driver = driver; }
  static CODES = { ArrowLeft: '\uE012', ArrowUp: '\uE013', ArrowRight: '\uE014', ArrowDown: '\uE015', Enter: '\uE007', Escape: '\uE00C', Tab: '\uE004', Shift: '\uE008' };
  press(combo) {
    const keys = combo.split('+').map((k) => Keyboard.CODES[k] ?? k);
    const actions = [...keys.map((value) => ({ type: 'keyDown', value })), ...keys.reverse().map((value) => ({ type: 'keyUp', value }))];
    return this.driver.cmd('POST', '/actions', { actions: [{ type: 'key', id: 'keyboard', actions }] });
  }
}
