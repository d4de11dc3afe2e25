// The page: inputs (file picker, drag and drop, paste, camera capture, live camera), progress,
// results. All model work happens in worker.js.
import { openCache, fetchFile } from './loader.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const bundleUrl = new URL(params.get('bundle') || 'www/demo/', location.href).href;
const MAX_PHOTO_BYTES = 64 * 1024 * 1024;

const state = { worker: null, summary: null, thumbnails: new Map(), thumbUrls: new Map(), nextId: 1, pending: new Map(), weights: null, hasQuery: false };
window.clipmatch = state; // for tests and curious people

function setState(s) { document.body.dataset.state = s; }
function mb(n) { return (n / 1e6).toFixed(1) + ' MB'; }

function showInputError(message) {
  const el = $('input-error');
  el.textContent = message;
  el.hidden = !message;
}

function startWorker() {
  state.workerStartedAt = performance.now();
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = ({ data }) => onWorkerMessage(data);
  worker.onerror = (e) => { setState('error'); $('status-text').textContent = `The app could not start: ${e.message || 'the worker failed to load'}`; };
  worker.postMessage({ type: 'load', bundleUrl });
  state.worker = worker;
}

function onWorkerMessage(msg) {
  if (msg.type === 'progress') {
    const bar = $(`progress-${msg.group}`);
    bar.max = msg.total; bar.value = msg.received;
    $(`progress-${msg.group}-text`).textContent = `${mb(msg.received)} of ${mb(msg.total)}`;
  } else if (msg.type === 'storage' || msg.type === 'note') {
    $('storage-text').textContent = msg.message; $('storage-text').hidden = false;
  } else if (msg.type === 'ready') {
    state.summary = msg.summary;
    state.ready = { ...msg, pageMs: { workerStarted: state.workerStartedAt, ready: performance.now() } };
    for (const t of msg.thumbnails) state.thumbnails.set(t.path, t);
    if (!state.weights) resetWeights();
    setState('ready');
    const how = [msg.fromCache ? 'loaded from this device' : '', msg.threads > 1 ? `${msg.threads} threads` : ''].filter(Boolean).join(', ');
    $('status-text').textContent = `Ready: ${msg.summary.items} products${how ? ` (${how})` : ''}. Choose or take a photo.`;
  } else if (msg.type === 'load-error') {
    setState('error');
    $('status-text').textContent = `The app could not load: ${msg.message}`;
  } else if (msg.type === 'result' || msg.type === 'error') {
    state.answers = (state.answers || 0) + 1;
    const req = state.pending.get(msg.id);
    state.pending.delete(msg.id);
    if (state.pending.size === 0) setState('ready');
    if (msg.type === 'error') {
      showInputError(req?.label ? `${req.label}: ${msg.message}` : msg.message);
      if (!req?.rerank) $('answer').hidden = true;
      if (msg.fatal) { state.worker.terminate(); setState('loading'); startWorker(); }
      return;
    }
    if (msg.id !== state.latestId) return; // an older photo's answer
    showInputError('');
    state.lastMs = msg.ms;
    render(msg.ranking);
  }
}

function send(request, transfer, label) {
  const id = state.nextId++;
  state.pending.set(id, { label, rerank: request.type === 'rerank' });
  state.latestId = id;
  setState('busy');
  state.worker.postMessage({ ...request, id, weights: state.weights }, transfer || []);
}

async function handleFile(file) {
  if (!file) return;
  if (!state.summary) { showInputError('The model is still loading; try again in a moment.'); return; }
  const label = file.name || 'The pasted image';
  showInputError('');
  if (file.size === 0) { showInputError(`${label}: the file is empty (0 bytes)`); return; }
  if (file.size > MAX_PHOTO_BYTES) { showInputError(`${label}: the file is ${mb(file.size)}, over the limit of ${mb(MAX_PHOTO_BYTES)}`); return; }
  showQuery(URL.createObjectURL(file), label);
  const bytes = await file.arrayBuffer();
  send({ type: 'rank', bytes }, [bytes], label);
}

function showQuery(url, caption) {
  const img = $('query-image');
  if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
  img.dataset.url = url; img.src = url;
  $('query-caption').textContent = caption;
  $('result-list').replaceChildren();
  $('verdict').textContent = 'Looking…';
  $('verdict').className = '';
  $('answer').hidden = false;
}

async function thumbnailUrl(path) {
  if (!path) return '';
  if (state.thumbUrls.has(path)) return state.thumbUrls.get(path);
  const entry = state.thumbnails.get(path);
  let url = new URL(path, bundleUrl).href;
  if (entry) {
    try {
      const { cache } = await openCache();
      const { bytes } = await fetchFile(bundleUrl, entry, cache);
      url = URL.createObjectURL(new Blob([bytes], { type: 'image/jpeg' }));
    } catch { /* fall back to the plain URL */ }
  }
  state.thumbUrls.set(path, url);
  return url;
}

function render(ranking) {
  state.lastRanking = ranking;
  const list = $('result-list');
  const verdict = $('verdict');
  const best = ranking.matches[0];
  if (!best) { verdict.textContent = 'The catalog is empty.'; return; }
  if (ranking.confident) {
    verdict.textContent = `Best match: ${best.name}`;
    verdict.className = '';
    list.className = '';
  } else {
    verdict.textContent = `No confident match: the best score (${best.score.toFixed(3)}) is under this catalog's threshold (${ranking.min_score.toFixed(3)}). The product may not be in the catalog; the closest ones are below.`;
    verdict.className = 'unsure';
    list.className = 'unsure';
  }
  const template = $('result-template');
  const items = ranking.matches.map((m) => {
    const li = template.content.firstElementChild.cloneNode(true);
    li.dataset.id = m.id;
    li.dataset.score = String(m.score);
    li.querySelector('.name').textContent = m.name;
    li.querySelector('.score').textContent = `score ${m.score.toFixed(3)}`;
    const t = Math.max(0, m.text_contribution), i = Math.max(0, m.image_contribution);
    const sum = t + i || 1;
    li.querySelector('.bar-text').style.width = `${(100 * t) / sum}%`;
    li.querySelector('.bar-image').style.width = `${(100 * i) / sum}%`;
    const b = li.querySelector('.breakdown');
    b.replaceChildren(
      Object.assign(document.createElement('span'), { className: 't', textContent: `name ${m.text_contribution.toFixed(3)}` }),
      document.createTextNode(` (${ranking.weights.text} × ${m.text_similarity.toFixed(3)}) + `),
      Object.assign(document.createElement('span'), { className: 'i', textContent: `image ${m.image_contribution.toFixed(3)}` }),
      document.createTextNode(` (${ranking.weights.image} × ${m.image_similarity.toFixed(3)})`),
    );
    const img = li.querySelector('.thumb');
    img.alt = m.name;
    thumbnailUrl(m.thumbnail).then((url) => { img.src = url; });
    return li;
  });
  list.replaceChildren(...items);
}

function resetWeights() {
  const s = state.summary;
  setWeights(s.textWeight, s.imageWeight);
}

function setWeights(text, image) {
  state.weights = { text, image, topK: state.summary?.topK };
  $('weight-text').value = text; $('weight-text-value').textContent = String(text);
  $('weight-image').value = image; $('weight-image-value').textContent = String(image);
}

function onWeightsChanged() {
  setWeights(Number($('weight-text').value), Number($('weight-image').value));
  if (state.lastRanking) send({ type: 'rerank' }, [], 'Re-ranking');
}

// Live camera (getUserMedia) where the browser allows it.
let stream = null;
async function openCamera() {
  if (!navigator.mediaDevices?.getUserMedia) { showInputError('This browser has no live camera access here; use "Take a photo" instead.'); return; }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  } catch (e) {
    showInputError(`The camera could not be opened: ${e.message || e.name}. Use "Take a photo" instead.`);
    return;
  }
  const video = $('camera-video');
  video.srcObject = stream;
  await video.play();
  $('camera').hidden = false;
  $('camera-shutter').focus();
}

function closeCamera() {
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  $('camera').hidden = true;
}

function shutter() {
  const video = $('camera-video');
  const w = video.videoWidth, h = video.videoHeight;
  if (!w || !h) { showInputError('The camera has not delivered a picture yet.'); return; }
  const canvas = document.createElement('canvas');
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(video, 0, 0, w, h);
  const rgba = ctx.getImageData(0, 0, w, h).data.buffer;
  // Synchronously, before the request: an asynchronous toBlob callback could run after the answer
  // had been shown and clear it again.
  showQuery(canvas.toDataURL('image/jpeg', 0.9), 'Camera photo');
  closeCamera();
  send({ type: 'rankPixels', rgba, width: w, height: h }, [rgba], 'Camera photo');
}

function wire() {
  for (const id of ['file-input', 'capture-input']) {
    $(id).addEventListener('change', (e) => { handleFile(e.target.files[0]); e.target.value = ''; });
  }
  const zone = $('drop-zone');
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('dragging'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (e) => { e.preventDefault(); zone.classList.remove('dragging'); handleFile(e.dataTransfer.files[0]); });
  zone.addEventListener('keydown', (e) => { if (e.target === zone && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); $('file-input').click(); } });
  document.addEventListener('paste', (e) => {
    const file = [...(e.clipboardData?.files || [])][0];
    if (file) handleFile(file);
  });
  $('camera-open').addEventListener('click', openCamera);
  $('camera-close').addEventListener('click', closeCamera);
  $('camera-shutter').addEventListener('click', shutter);
  $('weight-text').addEventListener('input', onWeightsChanged);
  $('weight-image').addEventListener('input', onWeightsChanged);
  $('weights-reset').addEventListener('click', () => { resetWeights(); if (state.lastRanking) send({ type: 'rerank' }, [], 'Re-ranking'); });
  $('query-image').addEventListener('error', () => { $('query-image').removeAttribute('src'); });
}

wire();
/**
 * Where the host sends no COOP/COEP headers, the isolation service worker adds them: it is
 * registered here and the page reloads once under it. True when that reload is coming.
 * `?threads=1` opts out (one thread, no service worker).
 */
async function isolateForThreads() {
  if (self.crossOriginIsolated || params.get('threads') === '1' || (navigator.hardwareConcurrency || 1) < 2) return false;
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return false;
  try {
    await navigator.serviceWorker.register(new URL('../isolation-sw.js', import.meta.url));
    await navigator.serviceWorker.ready;
  } catch (e) {
    console.warn('clipmatch: no cross-origin isolation, so one thread:', e);
    return false;
  }
  // Reload once per session: a page that is still not isolated after that stays on one thread.
  if (sessionStorage.getItem('clipmatch-isolation-reload')) return false;
  sessionStorage.setItem('clipmatch-isolation-reload', '1');
  location.reload();
  return true;
}

if (!(await isolateForThreads())) startWorker();
