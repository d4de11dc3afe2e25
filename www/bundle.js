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

/** Model families a bundle may name (bundle.json's `model.family`, the core's `Family::id`). */
export const FAMILIES = Object.freeze(['openai-clip', 'mobileclip', 'siglip']);
/** Families whose preprocessing is in preprocessor_config.json (MobileCLIP's is in its config). */
const NEEDS_PREPROCESSOR = ['openai-clip', 'siglip'];

/** The model family a checked bundle holds (version 1 names none: OpenAI CLIP). */
export const bundleFamily = (bundle) => bundle.model.family ?? 'openai-clip';

/**
 * The model entry's checks, as the core's (src/search/bundle.rs): a known family; in version 2
 * the family, preprocessing, embedding size and the weights' sha256 (the one listed); a
 * preprocessor config for the families that have one.
 */
function checkModel(bundle, files) {
  const model = bundle.model;
  if (bundle.version >= 2) {
    for (const field of ['family', 'preprocessing', 'embedding_dim', 'weights_sha256']) {
      if (model[field] === undefined || model[field] === null) throw new BundleRefused(`bundle.json (version 2) does not give the model's ${field}`);
    }
  }
  const family = bundleFamily(bundle);
  if (!FAMILIES.includes(family)) {
    throw new BundleRefused(`bundle.json names the model family ${JSON.stringify(String(family).slice(0, 80))}; this app runs ${FAMILIES.join(', ')}`);
  }
  if (model.embedding_dim !== undefined && !(Number.isSafeInteger(model.embedding_dim) && model.embedding_dim > 0 && model.embedding_dim <= 65536)) {
    throw new BundleRefused('bundle.json gives the model an impossible embedding size');
  }
  if (model.weights_sha256 !== undefined && model.weights_sha256 !== files.get(model.weights).sha256) {
    throw new BundleRefused(`bundle.json's model.weights_sha256 is not the sha256 it lists for ${JSON.stringify(model.weights)}`);
  }
  if (model.preprocessor === undefined && NEEDS_PREPROCESSOR.includes(family)) {
    throw new BundleRefused(`bundle.json names no preprocessor config, which a ${family} model needs`);
  }
}

/** The model's files bundle.json names: config, preprocessor (where named), weights. */
export const modelPaths = (bundle) => [bundle.model.config, bundle.model.preprocessor, bundle.model.weights].filter((p) => p !== undefined);

/**
 * Checks a parsed bundle.json against the format and the folder rule: every file a plain relative
 * path inside `folderUrl`, listed once, with a size and a sha256; the model and catalog files it
 * names are listed; the model is a family this app runs, described in full (version 2). Version 1
 * bundles (OpenAI CLIP, no description) are still read. Returns a Map path -> entry. Throws
 * BundleRefused naming the first problem.
 */
export function checkBundle(bundle, folderUrl) {
  if (bundle?.format !== 'clipmatch-bundle' || ![1, 2].includes(bundle.version) || !Array.isArray(bundle.files) || typeof bundle.model !== 'object' || !bundle.model) {
    throw new BundleRefused('bundle.json is not a clipmatch bundle of version 1 or 2');
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
  const named = [bundle.model.config, bundle.model.weights, bundle.catalog, bundle.vectors];
  if (bundle.model.preprocessor !== undefined) named.push(bundle.model.preprocessor);
  if (bundle.compact !== undefined) {
    if (typeof bundle.compact !== 'object' || bundle.compact === null) throw new BundleRefused('bundle.json\'s compact entry is not an object');
    named.push(bundle.compact.manifest, bundle.compact.codes);
  }
  for (const path of named) {
    if (!files.has(path)) throw new BundleRefused(`bundle.json does not list ${JSON.stringify(String(path))}`);
  }
  checkModel(bundle, files);
  return files;
}
