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
const fromBase64 = (b64) => new Float32Array(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer);

/** CLIP-style pixel values of a photo, made by the browser: shortest side resized to the crop size
 * (the browser's high-quality resize, not Pillow's bicubic: any realistic input serves), centre crop,
 * rescale, normalise with the model's mean and std. Photo bytes and result (CHW f32) as base64. */
async function pixelsFromPhoto(photoBase64, preprocessorUrl) {
  const pre = await (await fetch(preprocessorUrl)).json();
  const size = pre.crop_size?.height ?? pre.crop_size ?? 224;
  const bitmap = await createImageBitmap(new Blob([Uint8Array.from(atob(photoBase64), (c) => c.charCodeAt(0))]));
  const scale = size / Math.min(bitmap.width, bitmap.height);
  const w = Math.max(size, Math.round(bitmap.width * scale));
  const h = Math.max(size, Math.round(bitmap.height * scale));
  const resized = await createImageBitmap(bitmap, { resizeWidth: w, resizeHeight: h, resizeQuality: 'high' });
  const canvas = new OffscreenCanvas(size, size);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(resized, -Math.floor((w - size) / 2), -Math.floor((h - size) / 2));
  const rgba = ctx.getImageData(0, 0, size, size).data;
  const px = new Float32Array(3 * size * size);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < size * size; i++) {
      px[c * size * size + i] = (rgba[4 * i + c] * pre.rescale_factor - pre.image_mean[c]) / pre.image_std[c];
    }
  }
  return toBase64(px);
}

window.bench = {
  pixelsFromPhoto,
  setInput(name, b64) {
    inputs[name] = fromBase64(b64);
    return inputs[name].length;
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
