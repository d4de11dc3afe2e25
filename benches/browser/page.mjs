// The benchmark page: makes the input tensor and relays bench.mjs's calls to one worker per variant.
const workers = new Map();
const inputs = {};
let nextId = 0;

function call(worker, message) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const onMessage = ({ data }) => {
      if (data.id !== id) return;
      worker.removeEventListener('message', onMessage);
      if (data.error) reject(new Error(data.error));
      else resolve(data.result);
    };
    worker.addEventListener('message', onMessage);
    worker.postMessage({ ...message, id });
  });
}

const toBase64 = (f32) => {
  const bytes = new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
};
const bytesFromBase64 = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const fromBase64 = (b64) => new Float32Array(bytesFromBase64(b64).buffer);

/**
 * Pixel values of a photo for a model, made by the browser from a bundle's resolved preprocessing
 * (bundle.json's `model.preprocessing`): resized as its `resize_mode` says (shortest: short side to
 * `shortest_edge`, then a centre crop; squash: straight to the crop size; longest: long side to the
 * crop size, zero padding), rescaled and normalised with its mean and std. The browser's
 * high-quality resize, not Pillow's: any realistic input serves. Photo bytes and result (CHW f32)
 * as base64.
 */
async function pixelsFromPhoto(photoBase64, pre) {
  const [width, height] = [pre.crop_width, pre.crop_height];
  const bitmap = await createImageBitmap(new Blob([bytesFromBase64(photoBase64)]));
  const mode = pre.resize_mode ?? 'shortest';
  const scale = mode === 'longest' ? Math.min(width / bitmap.width, height / bitmap.height)
    : pre.shortest_edge / Math.min(bitmap.width, bitmap.height);
  const w = mode === 'squash' ? width : Math.max(1, Math.round(bitmap.width * scale));
  const h = mode === 'squash' ? height : Math.max(1, Math.round(bitmap.height * scale));
  const resized = await createImageBitmap(bitmap, { resizeWidth: w, resizeHeight: h, resizeQuality: 'high' });
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = 'black';
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(resized, Math.floor((width - w) / 2), Math.floor((height - h) / 2));
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const plane = width * height;
  const px = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) px[c * plane + i] = (rgba[4 * i + c] * pre.rescale_factor - pre.mean[c]) / pre.std[c];
  }
  return toBase64(px);
}

window.bench = {
  pixelsFromPhoto,
  setInput(name, b64) {
    inputs[name] = fromBase64(b64);
    return inputs[name].length;
  },
  /** The encoded photo that `query` ranks (base64). */
  setPhoto(b64) {
    inputs.photoBytes = bytesFromBase64(b64);
  },
  async load(variant, urls) {
    // The variant in the URL tells the workers apart in measureUserAgentSpecificMemory's attribution.
    const url = new URL(`worker.mjs?variant=${encodeURIComponent(variant.name)}`, import.meta.url);
    const worker = new Worker(url, { type: 'module', name: variant.name });
    workers.set(variant.name, worker);
    return call(worker, { type: 'load', variant, urls });
  },
  /** One timed run; the same Float32Array goes (copied) to every engine. */
  async run(name, input) {
    const r = await call(workers.get(name), { type: 'run', pixels: inputs[input] });
    return { ms: r.ms, embedding: Array.from(r.embedding), memoryBytes: r.memoryBytes };
  },
  /** One timed query as the page's worker answers a photo (our variants only). */
  query(name) {
    return call(workers.get(name), { type: 'query', photo: inputs.photoBytes });
  },
  /** Cross-origin isolated pages only: bytes per variant's worker (JS heap + wasm memory, as
   * performance.measureUserAgentSpecificMemory attributes them; Chromium may take a minute). */
  async measureMemory() {
    const perVariant = {};
    for (const entry of (await performance.measureUserAgentSpecificMemory()).breakdown) {
      for (const a of entry.attribution) {
        const variant = a.url && new URL(a.url).searchParams.get('variant');
        if (variant) perVariant[variant] = (perVariant[variant] || 0) + entry.bytes;
      }
    }
    return perVariant;
  },
  crossOriginIsolated: self.crossOriginIsolated,
};
document.body.dataset.state = 'ready';
