// What ships (index.html, the service workers, www/, pkg/) has no test hooks: no URL parameter
// but the documented ones (?bundle=, ?engine=, ?threads=) is read, and no test-only entry point
// is built in; the tests' own hooks live in tests/e2e/hooks/. Registered by app.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { root, openApp, rankOnImagesOnly, assertFindsItself } from './harness.mjs';

/** The URL parameters the shipped files may read (README: "Using the page"). */
const DOCUMENTED_PARAMS = ['bundle', 'engine', 'threads'];
/** Test-only names that must not appear in a shipped file at all. */
const TEST_ONLY = /testFault|panicForTest/;
/** A read of a URL parameter: `params.get('x')`, `url.searchParams.has("x")`, `new URLSearchParams(...).get(x)`. */
const PARAM_READ = /(?:params|searchParams|URLSearchParams\([^)]*\))\s*\.\s*(?:get|getAll|has)\(\s*([^)]*)\)/gi;

/** Every file a site publishes (README: "Publishing"), less bundles (www/ subfolders). */
function shippedFiles() {
  const files = ['index.html', 'manifest.webmanifest', 'isolation-sw.js', 'isolation-sw-off.js'].map((f) => path.join(root, f));
  const www = path.join(root, 'www');
  files.push(...readdirSync(www, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(www, e.name)));
  const walk = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
  if (existsSync(path.join(root, 'pkg'))) files.push(...walk(path.join(root, 'pkg')).filter((f) => /\.(js|wasm)$/.test(f)));
  return files;
}

export function shippedTests() {
  test('no shipped file reads a test hook: only documented URL parameters, no test-only entry points', () => {
    const found = [];
    const files = shippedFiles();
    assert.ok(files.some((f) => f.endsWith(path.join('pkg', 'clipmatch_bg.wasm'))), 'pkg/ is built (scripts/build_wasm.sh)');
    for (const file of files) {
      const text = readFileSync(file, 'latin1'); // a .wasm's export names are bytes of text too
      const rel = path.relative(root, file);
      if (TEST_ONLY.test(text)) found.push(`${rel}: ${TEST_ONLY.exec(text)[0]}`);
      if (!/\.(js|html)$/.test(file)) continue;
      for (const [, arg] of text.matchAll(PARAM_READ)) {
        const name = /^\s*['"`]([\w-]+)['"`]\s*$/.exec(arg)?.[1];
        if (!DOCUMENTED_PARAMS.includes(name)) found.push(`${rel}: reads the URL parameter ${arg.trim()}`);
      }
    }
    assert.deepEqual(found, []);
  });

  test('the shipped page ignores test hooks in its link (?testFault=crash-twice&requestTimeoutMs=1)', async () => {
    const { page, context, problems } = await openApp(undefined, {}, undefined, '&testFault=crash-twice&requestTimeoutMs=1');
    await rankOnImagesOnly(page);
    await assertFindsItself(page, 'Arla-Standard-Milk');
    await assertFindsItself(page, 'Oatly-Natural-Oatghurt');
    assert.equal(await page.evaluate(() => window.clipmatch.restarts), 0, 'the model was never restarted');
    assert.match(await page.textContent('#status-text'), /^Ready: /);
    assert.deepEqual(await problems(), []);
    await context.close();
  });
}
