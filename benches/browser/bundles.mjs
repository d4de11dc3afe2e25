// The bundles the browser benchmark's own variants load, as the page loads them: a small catalog
// (a few grocery products) built with the model by `clipmatch build`, exported by `clipmatch bundle`
// once per dtype into DIR/f32, DIR/f16, DIR/int8. Each is made on first use and kept while the
// model's weights file is the same; `rebuild` makes them again.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Products in the benchmark's catalog: enough for a real ranking, few enough to build in seconds. */
const PRODUCTS = 4;

/** The model folder's weights file, whichever layout (the CLI's `--model` says which it supports). */
const WEIGHTS_FILES = ['open_clip_model.safetensors', 'model.safetensors'];

function weightsOf(modelDir) {
  const name = WEIGHTS_FILES.find((f) => existsSync(path.join(modelDir, f)));
  if (!name) throw new Error(`${modelDir} holds no ${WEIGHTS_FILES.join(' or ')}: not a model folder`);
  const { size, mtimeMs } = statSync(path.join(modelDir, name));
  return { name, size, mtimeMs };
}

function imagesUnder(dir, suffix) {
  return readdirSync(dir, { recursive: true }).filter((f) => f.endsWith(suffix)).sort().map((f) => path.join(dir, f));
}

/** CSV rows `image,name,` for the catalog: iconic grocery images spread over the products, else the fixture photos. */
function productList(root) {
  const iconic = path.join(root, '../shared/data/grocery-packages/iconic');
  if (existsSync(iconic)) {
    const all = imagesUnder(iconic, '_Iconic.jpg');
    const step = Math.max(1, Math.floor(all.length / PRODUCTS));
    return all.filter((_, i) => i % step === 0).slice(0, PRODUCTS)
      .map((f) => [f, path.basename(path.dirname(f)).replaceAll('-', ' ')]);
  }
  const fixtures = path.join(root, 'tests/fixtures/images');
  return ['photo.jpg', 'small.png', 'gray.png'].map((f) => [path.join(fixtures, f), path.parse(f).name]);
}

/** CLIP's tokenizer for open_clip folders that do not carry one (the random full-size models). */
function tokenizerArgs(root, modelDir) {
  if (existsSync(path.join(modelDir, 'tokenizer.json'))) return [];
  const shared = path.join(root, '../shared/data/clip-vit-base-patch32/tokenizer.json');
  if (!existsSync(shared)) throw new Error(`${modelDir} has no tokenizer.json and ${shared} is absent: the catalog's names need one`);
  return ['--tokenizer', shared];
}

function run(exe, args) {
  process.stderr.write(`$ ${path.relative(process.cwd(), exe)} ${args.join(' ')}\n`);
  execFileSync(exe, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * Bundle folders by dtype ({f16: DIR/f16, ...}) for `dtypes`, each made with `exe` where missing or
 * made from another weights file (DIR/made-from.<catalog|dtype>.json record the source).
 * `modelDir`, `outDir`, `exe`: absolute paths.
 */
export function ensureBundles({ root, modelDir, outDir, dtypes, exe, rebuild = false }) {
  const source = JSON.stringify({ model: path.resolve(modelDir), weights: weightsOf(modelDir) });
  const stamp = (name) => path.join(outDir, `made-from.${name}.json`);
  const current = (name, made) => !rebuild && existsSync(made) && existsSync(stamp(name)) && readFileSync(stamp(name), 'utf8') === source;
  const dirs = Object.fromEntries(dtypes.map((d) => [d, path.join(outDir, d)]));
  const missing = dtypes.filter((d) => !current(d, path.join(dirs[d], 'bundle.json')));
  if (missing.length === 0) return dirs;
  if (!existsSync(exe)) throw new Error(`${exe} is missing: cargo build --release (it makes the benchmark's bundles)`);
  mkdirSync(outDir, { recursive: true });
  const catalog = path.join(outDir, 'catalog');
  if (!current('catalog', path.join(catalog, 'catalog.json'))) {
    const csv = path.join(outDir, 'products.csv');
    writeFileSync(csv, ['image,name,description', ...productList(root).map(([f, n]) => `${f},${n},`)].join('\n') + '\n');
    run(exe, ['build', csv, '--model', modelDir, ...tokenizerArgs(root, modelDir), '--out', catalog]);
    writeFileSync(stamp('catalog'), source);
  }
  for (const d of missing) {
    run(exe, ['bundle', '--catalog', catalog, '--model', modelDir, '--dtype', d, '--out', dirs[d]]);
    writeFileSync(stamp(d), source);
  }
  return dirs;
}
