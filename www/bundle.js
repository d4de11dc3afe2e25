// Where a bundle may come from: a folder on the page's own site (origin), and every file it lists
// inside that folder. A link such as `?bundle=https://other.example/x/` could otherwise show
// another party's products under the shop's address; a bundle.json naming `../../x` or
// `https://...` could make the page fetch files the bundle does not own. Used by the page (before
// anything is fetched) and by the worker (for bundle.json).

/** A file larger than this in bundle.json is refused (wasm32 memory is 4 GiB in all). */
export const MAX_BUNDLE_FILE_BYTES = 2 ** 31;

export class BundleRefused extends Error {}

/**
 * The bundle folder's URL (ending in `/`) for a `?bundle=` value, resolved against the page's URL.
 * Throws BundleRefused, with a message for the user, for anything not on the page's own origin
 * (another host or port, `//host/`, `javascript:`, `data:`, `blob:` ...).
 */
export function bundleFolderUrl(param, pageUrl) {
  const page = new URL(pageUrl);
  let url = null;
  try { url = new URL(param, page); } catch { /* refused below */ }
  const sameSite = url && url.protocol === page.protocol && url.origin === page.origin;
  if (!sameSite) {
    const elsewhere = url && /^https?:$/.test(url.protocol) ? `another site (${url.host})` : 'an address that is not a folder of this site';
    throw new BundleRefused(`This link asks for a catalog from ${elsewhere}; this page only loads catalogs from its own site (${page.host}).`);
  }
  url.search = '';
  url.hash = '';
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url.href;
}

// Encoded dots, slashes and backslashes could become `..` or separators on the server's side.
const ENCODED_SEPARATOR = /%(2e|2f|5c)/i;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Why `path` (from bundle.json) is not a plain relative path inside the bundle folder, or null. */
function pathProblem(path, folderUrl) {
  if (typeof path !== 'string' || path === '' || path.length > 1024) return 'is not a file name';
  if (path.startsWith('/') || path.includes('\\') || path.includes(':') || CONTROL.test(path)) return 'is not a relative path';
  if (path.includes('?') || path.includes('#') || ENCODED_SEPARATOR.test(path)) return 'is not a plain file path';
  if (path.split('/').some((s) => s === '' || s === '.' || s === '..')) return 'leaves its folder or has an empty part';
  if (!new URL(path, folderUrl).href.startsWith(folderUrl)) return 'resolves outside the bundle folder';
  return null;
}

/**
 * Checks a parsed bundle.json against the format and the folder rule: every file a plain relative
 * path inside `folderUrl`, listed once, with a size and a sha256; the model and catalog files it
 * names are listed. Returns a Map path -> entry. Throws BundleRefused naming the first problem.
 */
export function checkBundle(bundle, folderUrl) {
  if (bundle?.format !== 'clipmatch-bundle' || bundle.version !== 1 || !Array.isArray(bundle.files)) {
    throw new BundleRefused('bundle.json is not a clipmatch bundle of version 1');
  }
  const files = new Map();
  for (const f of bundle.files) {
    const problem = pathProblem(f?.path, folderUrl);
    const shown = JSON.stringify(String(f?.path).slice(0, 80));
    if (problem) throw new BundleRefused(`bundle.json lists a file that ${problem} (${shown}); nothing was loaded from it`);
    if (files.has(f.path)) throw new BundleRefused(`bundle.json lists ${shown} twice`);
    if (!Number.isSafeInteger(f.bytes) || f.bytes < 0 || f.bytes > MAX_BUNDLE_FILE_BYTES) throw new BundleRefused(`bundle.json gives ${shown} an impossible size`);
    if (typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256)) throw new BundleRefused(`bundle.json gives ${shown} no valid sha256`);
    files.set(f.path, f);
  }
  const named = [bundle.model?.config, bundle.model?.preprocessor, bundle.model?.weights, bundle.catalog, bundle.vectors];
  for (const path of named) if (!files.has(path)) throw new BundleRefused(`bundle.json does not list ${JSON.stringify(String(path))}`);
  return files;
}
