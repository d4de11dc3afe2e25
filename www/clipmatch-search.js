// The search as a drop-in element: `<clipmatch-search bundle="catalog/">` (or
// `mountSearch(element, { bundle })`) puts the whole app into any page of the site, in a shadow
// root with its own stylesheet (www/clipmatch-search.css, by <link>: no inline styles or scripts,
// so it works under a Content-Security-Policy like index.html's), so neither the host's CSS nor
// ours leaks. Inputs (file picker, drag and drop, paste, camera capture, live camera), progress,
// results; all model work happens in worker.js, driven by model-worker.js. Events on the element:
// `ready` (detail: items, model), `results` (detail: ranking, each match with its item fields) and
// `select` (detail: item {id, name, fields} and url; cancelable: preventDefault() keeps the page
// from following the url). index.html is this element alone, plus the page's URL parameters.
import { bundleFolderUrl, BundleRefused } from './bundle.js';
import { ModelWorker } from './model-worker.js';
import { singleThreadRequested, leaveIsolation, isolateForThreads } from './isolation.js';
import { fallbackNote, threadsDetail } from './threads.js';
import { isPhotoRequest, isRegionRequest, isRerankRequest, rankPixelsRequest, rankRegionRequest, rankRequest, rerankRequest, wholePhotoRequest } from './messages.js';
import { CropBox } from './crop.js';
import { MARKUP } from './markup.js';
import { sizeText, timeLeftText, DownloadClock } from './sizes.js';
import { itemLink, FIELD_LABELS } from './item-links.js';

const STYLESHEET = new URL('./clipmatch-search.css', import.meta.url).href;
const params = new URLSearchParams(location.search);

/**
 * Mounts the search in `host` (any element; its open shadow root holds the app) and starts
 * loading `options.bundle` (a folder of this site, relative to the page). `options.standalone`:
 * the page is the app itself (index.html): it may reload once under the isolation service worker,
 * and a paste anywhere on the page searches. `options.onState(state)` hears 'loading', 'ready',
 * 'busy' or 'error' (the host's `data-state` attribute says the same).
 * `options.requestTimeoutMs`: the time limit of one request to the model (default 60 s; a host
 * for slow devices may raise it). Returns the app's state.
 */
export function mountSearch(host, options = {}) {
  if (host.shadowRoot?.querySelector('#status')) throw new Error('this element already holds a search');
  const root = host.shadowRoot || host.attachShadow({ mode: 'open' });
  const link = Object.assign(document.createElement('link'), { rel: 'stylesheet', href: STYLESHEET });
  const template = document.createElement('template');
  template.innerHTML = MARKUP;
  root.replaceChildren(link, template.content);
  const $ = (id) => root.getElementById(id);

  // maxPhotoBytes: the largest photo the matcher accepts, from the worker's `ready` message.
  // region: the part of the photo being searched ({x, y, width, height} in its upright pixels), or null.
  // photoTicket / regionTicket: the latest photo and region requests (see ask).
  // panic: the message of the panic that made the model restart last (src/web/panic_hook.rs), if any.
  const state = { root, host, bundleUrl: null, model: null, summary: null, maxPhotoBytes: null, thumbnails: new Map(), thumbUrls: new Map(), weights: null, answers: 0, restarts: 0, outstanding: 0, latest: 0, region: null, photoTicket: 0, regionTicket: 0, waiting: null };
  window.clipmatch = state; // for tests and curious people (the last search mounted)

  function setState(s) { host.dataset.state = s; options.onState?.(s); }
  const emit = (type, detail, cancelable = false) => host.dispatchEvent(new CustomEvent(type, { detail, cancelable, bubbles: true, composed: true }));
  setState('loading');
  // Weights arrive from wasm as f32 (1.2 is 1.2000000476837158): shown to at most 3 decimals.
  function weightText(x) { return String(Number(Number(x).toFixed(3))); }

  function showInputError(message) {
    const el = $('input-error');
    el.textContent = message;
    el.hidden = !message;
  }

  /** `?engine=ours|candle`: what runs the model (the core refuses an unknown one, or one the bundle's family cannot run). */
  function engineParam() {
    return params.get('engine') || undefined;
  }

  const FAMILY_NAMES = { 'openai-clip': 'OpenAI CLIP', mobileclip: 'MobileCLIP', siglip: 'SigLIP' };

  /** Which model and engine answer, as text. */
  const percent = (x) => (x == null ? 'not measured' : `${Math.round(x * 100)} %`);

  /** Where the catalog's weights and threshold came from, in words (`clipmatch tune` or build). */
  function weightsSourceText(summary) {
    const t = summary.tuned;
    if (!t) {
      return `These weights were set when the catalog was built (name ${weightText(summary.textWeight)}, image `
        + `${weightText(summary.imageWeight)}), not measured on photos of these products. The shop can measure and `
        + 'choose them on its own labelled photos with clipmatch eval and clipmatch tune.';
    }
    const date = t.when.slice(0, 10);
    return `These weights were tuned on ${date} on ${t.photos} labelled photos of ${t.products} products, by `
      + `cross-validation over products (${t.folds} folds: each product's photos were scored by weights chosen `
      + `without them). On those held-out photos the right product came first ${percent(t.held_out.top1)} of the `
      + `time and among the first five ${percent(t.held_out.top5)} of the time (the weights before tuning: `
      + `${percent(t.before.top1)} and ${percent(t.before.top5)}).`;
  }

  /** What "confident match" means for this catalog, in words. */
  function thresholdText(summary) {
    const t = summary.tuned;
    const line = `A result is called a confident match when its score is at least ${summary.minScore.toFixed(3)}.`;
    if (!t) {
      return `${line} That threshold is an estimate made from the catalog's own product photos, not yet checked `
        + 'against photos taken in the shop.';
    }
    const precision = t.held_out.confident_precision;
    const short = precision == null || precision < t.confident_precision_target;
    return `${line} It was chosen aiming for ${percent(t.confident_precision_target)} of confident matches to name the `
      + `right product. On held-out photos, ${short ? 'only ' : ''}${percent(precision)} of confident matches were right`
      + `${short ? ' (short of the aim: treat "confident" with care)' : ''}, and ${percent(t.held_out.confident_recall)} `
      + 'of photos of listed products got a confident, right answer.';
  }

  function modelText(summary, model) {
    const family = FAMILY_NAMES[model.family] || model.family;
    return `Model: ${summary.modelName} (${family}, ${model.dtype} weights), run by the ${model.engine} engine.`;
  }

  function onReady(msg, restarted) {
    state.summary = msg.summary;
    state.maxPhotoBytes = msg.maxPhotoBytes;
    state.ready = { ...msg, thumbnails: undefined, pageMs: { workerStarted: state.workerStartedAt, ready: performance.now() } };
    if (msg.thumbnails) for (const t of msg.thumbnails) state.thumbnails.set(t.path, t.blob);
    if (!state.weights) resetWeights();
    $('model-text').textContent = modelText(msg.summary, msg.model);
    $('weights-source').textContent = weightsSourceText(msg.summary);
    $('threshold-meaning').textContent = thresholdText(msg.summary);
    $('model-text').hidden = false;
    $('threads-text').textContent = fallbackNote(msg.threading);
    $('threads-text').hidden = !$('threads-text').textContent;
    $('threads-detail').textContent = threadsDetail(msg.threading);
    $('plan-text').hidden = true; // the download it announced is over
    if (state.outstanding === 0) setState('ready');
    const how = [msg.fromCache ? 'loaded from this device' : '', msg.threads > 1 ? `${msg.threads} threads` : ''].filter(Boolean).join(', ');
    $('status-text').textContent = restarted
      ? `Ready again: the model was restarted after a failure${state.panic ? ` (it panicked: ${state.panic})` : ''}. Choose or take a photo.`
      : `Ready: ${msg.summary.items} products${how ? ` (${how})` : ''}. Choose or take a photo.`;
    if (!restarted) emit('ready', { items: msg.summary.items, model: msg.model });
    const waiting = state.waiting;
    state.waiting = null;
    waiting?.();
  }

  /** Before a download: how large it is; on a metered connection (Save-Data), ask first. */
  function onPlan(msg, proceed) {
    const total = msg.toDownload;
    if (total === 0) return proceed();
    $('plan-text').textContent = `Downloading ${sizeText(total)} (the model, the catalog and the search engine; kept on this device for next time).`;
    $('plan-text').hidden = false;
    if (!navigator.connection?.saveData) return proceed();
    $('plan-text').textContent = `This device asks to save data. The search needs a one-time download of ${sizeText(total)} (the model, the catalog and the search engine), kept on this device for next time.`;
    const button = $('plan-go');
    button.textContent = `Download ${sizeText(total)}`;
    button.hidden = false;
    $('status-text').textContent = 'Waiting for your go-ahead to download.';
    button.addEventListener('click', () => {
      button.hidden = true;
      $('plan-text').textContent = `Downloading ${sizeText(total)} (the model, the catalog and the search engine).`;
      $('status-text').textContent = 'Loading…';
      proceed();
    }, { once: true });
  }

  function startModel(bundleUrl) {
    state.workerStartedAt = performance.now();
    const clock = new DownloadClock();
    state.model = new ModelWorker({
      bundleUrl,
      engine: engineParam(),
      maxThreads: singleThreadRequested() ? 1 : undefined,
      timeoutMs: options.requestTimeoutMs,
      on: {
        plan: onPlan,
        progress(msg) {
          const bar = $(`progress-${msg.group}`);
          bar.max = msg.total; bar.value = msg.received;
          const left = timeLeftText(clock.secondsLeft(msg.group, msg.received, msg.total));
          $(`progress-${msg.group}-text`).textContent = `${sizeText(msg.received)} of ${sizeText(msg.total)}${left ? `, ${left}` : ''}`;
        },
        note(message) { $('storage-text').textContent = message; $('storage-text').hidden = false; },
        ready: onReady,
        pruned(msg) { state.pruned = msg; },
        restarting(kind, panic) {
          state.restarts++;
          state.panic = panic; // said now and in "Ready again"
          setState('busy');
          const why = panic ? ` (it panicked: ${panic})` : kind === 'memory' ? ' (it ran out of memory)' : '';
          $('status-text').textContent = `The model stopped${why} and is restarting; `
            + 'a photo it was working on will be tried once more.';
        },
        loadError(message) {
          setState('error');
          $('status-text').textContent = `The app could not load: ${message}`;
        },
      },
    });
    state.model.start();
  }

  /**
   * Sends a request to the model and shows its answer, if it is still the latest one. Call it
   * when the user acts, before any await: its ticket (and its place in the model's queue) is
   * taken then, so the last photo chosen wins even while an earlier one is still being read (a
   * photo's bytes may be a promise).
   */
  async function ask(message, label) {
    const rerank = isRerankRequest(message);
    const region = isRegionRequest(message);
    const ticket = ++state.latest;
    if (isPhotoRequest(message)) state.photoTicket = ticket;
    if (region) state.regionTicket = ticket;
    state.outstanding++;
    setState('busy');
    try {
      const answer = await state.model.request({ ...message, weights: state.weights });
      if (answer === null) return; // replaced by a newer request before it ran
      state.answers++;
      // The worker now searches this region of the photo, even if a newer request hides this answer.
      if (region && ticket > state.photoTicket) state.region = message.region || null;
      if (ticket !== state.latest) return; // an older photo's answer
      showInputError('');
      state.lastMs = answer.ms;
      render(answer.ranking);
    } catch (e) {
      state.answers++;
      showInputError(`${label}: ${e.message}`);
      // A refused region: the box goes back to the region still searched, the results stay.
      if (region && ticket === state.regionTicket && ticket > state.photoTicket) crop.revert(state.region);
      if (!rerank && !region && ticket === state.latest) {
        $('answer').hidden = true;
        state.lastRanking = null; // the worker freed the photo before: nothing to re-rank until the next one
      }
    } finally {
      state.outstanding--;
      if (state.outstanding === 0 && state.model.ready) setState('ready');
    }
  }

  async function handleFile(file) {
    if (!file) return;
    if (!state.summary) {
      // Kept until the model is ready (a newer photo replaces it: the last one chosen wins).
      waitForModel(() => handleFile(file), file.name || 'The pasted image');
      setQueryImage(URL.createObjectURL(file));
      return;
    }
    const label = file.name || 'The pasted image';
    showInputError('');
    if (file.size === 0) { showInputError(`${label}: the file is empty (0 bytes)`); return; }
    if (file.size > state.maxPhotoBytes) { showInputError(`${label}: the file is ${sizeText(file.size)}, over the limit of ${sizeText(state.maxPhotoBytes)}`); return; }
    showQuery(label);
    setQueryImage(URL.createObjectURL(file));
    await ask(rankRequest(file.arrayBuffer()), label);
  }

  /**
   * Keeps a photo chosen while the model loads (`search` searches it), replacing any kept before
   * it: the last one chosen wins once the model is ready.
   */
  function waitForModel(search, caption) {
    state.waiting = search;
    showInputError('');
    showQuery(caption);
    $('verdict').textContent = 'This photo will be searched as soon as the model has loaded.';
  }

  /** Shows the answer area for a new photo (its image comes with setQueryImage); no box on it yet. */
  function showQuery(caption) {
    const img = $('query-image');
    if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
    delete img.dataset.url;
    img.removeAttribute('src');
    state.region = null;
    crop.reset();
    $('query-caption').textContent = caption;
    $('crop-status').textContent = '';
    $('crop-clear').hidden = true;
    $('result-list').replaceChildren();
    $('verdict').textContent = 'Looking…';
    $('verdict').className = '';
    $('answer').hidden = false;
  }

  function setQueryImage(url) {
    const img = $('query-image');
    img.dataset.url = url;
    img.src = url;
  }

  /** A thumbnail from the ones the worker fetched with the catalog: never a request after a photo. */
  function thumbnailUrl(path) {
    if (!path || !state.thumbnails.has(path)) return '';
    if (!state.thumbUrls.has(path)) state.thumbUrls.set(path, URL.createObjectURL(state.thumbnails.get(path)));
    return state.thumbUrls.get(path);
  }

  /** Says what the results are for: the whole photo, or the region boxed on it. */
  function showCropStatus() {
    const r = state.region;
    $('crop-status').textContent = r
      ? `Results for the selected region: ${r.width} × ${r.height} pixels at (${r.x}, ${r.y}) of the photo.`
      : 'Results for the whole photo.';
    $('crop-status').classList.toggle('region', Boolean(r));
    $('crop-clear').hidden = !r;
  }

  function render(ranking) {
    for (const m of ranking.matches) m.fields ||= {}; // absent when an item has none
    state.lastRanking = ranking;
    showCropStatus();
    const list = $('result-list');
    const verdict = $('verdict');
    const best = ranking.matches[0];
    if (!best) { verdict.textContent = 'The catalog is empty.'; return; }
    // A big catalog answers from its compact codes until its vectors have downloaded, with the
    // weights the codes were made for (the catalog's), whatever the sliders say.
    const differ = (a, b) => weightText(a) !== weightText(b); // f32 from the core, f64 here
    const own = state.weights && (differ(state.weights.text, ranking.weights.text) || differ(state.weights.image, ranking.weights.image));
    const approximate = !ranking.codes_only ? ''
      : own ? ` (approximate, with the catalog's weights ${weightText(ranking.weights.text)} × name + ${weightText(ranking.weights.image)} × image: yours apply once the catalog's vectors have downloaded)`
        : ' (approximate: the catalog\'s vectors are still downloading)';
    if (ranking.confident) {
      verdict.textContent = `Best match: ${best.name}${approximate}`;
      verdict.className = '';
      list.className = '';
    } else {
      verdict.textContent = `No confident match: the best score (${best.score.toFixed(3)}) is under this catalog's threshold (${ranking.min_score.toFixed(3)}). The product may not be in the catalog; the closest ones are below.${approximate}`;
      verdict.className = 'unsure';
      list.className = 'unsure';
    }
    const template = $('result-template');
    const items = ranking.matches.map((m) => {
      const li = template.content.firstElementChild.cloneNode(true);
      li.dataset.id = m.id;
      li.dataset.score = String(m.score);
      showItem(li, m);
      li.querySelector('.score').textContent = `score ${m.score.toFixed(3)}`;
      const t = Math.max(0, m.text_contribution), i = Math.max(0, m.image_contribution);
      const sum = t + i || 1;
      li.querySelector('.bar-text').style.width = `${(100 * t) / sum}%`;
      li.querySelector('.bar-image').style.width = `${(100 * i) / sum}%`;
      const b = li.querySelector('.breakdown');
      // Compact codes hold name and image fused: no breakdown until the vectors are here.
      if (ranking.codes_only) b.replaceChildren(document.createTextNode('name and image together (compact codes)'));
      else b.replaceChildren(
        Object.assign(document.createElement('span'), { className: 't', textContent: `name ${m.text_contribution.toFixed(3)}` }),
        document.createTextNode(` (${weightText(ranking.weights.text)} × ${m.text_similarity.toFixed(3)}) + `),
        Object.assign(document.createElement('span'), { className: 'i', textContent: `image ${m.image_contribution.toFixed(3)}` }),
        document.createTextNode(` (${weightText(ranking.weights.image)} × ${m.image_similarity.toFixed(3)})`),
      );
      const img = li.querySelector('.thumb');
      img.alt = m.name;
      const url = thumbnailUrl(m.thumbnail);
      // No thumbnail (a compact catalog has none): no image at all, not a broken one showing its alt text.
      img.hidden = !url;
      if (url) img.src = url;
      return li;
    });
    list.replaceChildren(...items);
    emit('results', { ranking });
  }

  /**
   * The result's name (a link to the item's `url` where that is an http(s) or relative URL,
   * resolved against the bundle's folder; otherwise text) and its price and sku: all as text.
   */
  function showItem(li, m) {
    const name = li.querySelector('.name');
    const href = itemLink(m.fields?.url, state.bundleUrl);
    const item = { id: m.id, name: m.name, fields: { ...(m.fields || {}) } };
    if (href) {
      const a = Object.assign(document.createElement('a'), { href, textContent: m.name, className: 'item-link' });
      a.addEventListener('click', (e) => { if (!emit('select', { item, url: href }, true)) e.preventDefault(); });
      name.replaceChildren(a);
    } else {
      name.textContent = m.name;
    }
    // A click elsewhere on the result selects it too (only the link is followed).
    li.addEventListener('click', (e) => { if (!e.target.closest('a')) emit('select', { item, url: href }, true); });
    const shown = Object.keys(FIELD_LABELS).filter((k) => m.fields?.[k]);
    const fields = li.querySelector('.fields');
    fields.replaceChildren(...shown.map((k) => Object.assign(document.createElement('span'), { className: `field ${k}`, textContent: `${FIELD_LABELS[k]} ${m.fields[k]}` })));
    fields.hidden = shown.length === 0;
    // A url that is not a link (javascript:, data:, ...) is shown as text, never followed.
    if (m.fields?.url && !href) fields.append(Object.assign(document.createElement('span'), { className: 'field url', textContent: m.fields.url }));
    if (m.fields?.url && !href) fields.hidden = false;
  }

  function resetWeights() {
    const s = state.summary;
    setWeights(s.textWeight, s.imageWeight);
  }

  function setWeights(text, image) {
    state.weights = { text, image, topK: state.summary?.topK };
    $('weight-text').value = text; $('weight-text-value').textContent = weightText(text);
    $('weight-image').value = image; $('weight-image-value').textContent = weightText(image);
  }

  function onWeightsChanged() {
    setWeights(Number($('weight-text').value), Number($('weight-image').value));
    if (state.lastRanking) ask(rerankRequest(), 'Re-ranking');
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
    if (!state.summary) {
      waitForModel(() => ask(rankPixelsRequest(rgba, w, h), 'Camera photo'), 'Camera photo');
      closeCamera();
      canvas.toBlob((blob) => { if (blob && !state.summary) setQueryImage(URL.createObjectURL(blob)); }, 'image/jpeg', 0.9);
      return;
    }
    // The answer area is cleared now, before the request; the picture only fills in the image when
    // it is encoded (a blob: URL, as the Content-Security-Policy allows), if no newer photo came.
    showQuery('Camera photo');
    closeCamera();
    ask(rankPixelsRequest(rgba, w, h), 'Camera photo');
    // Shown if no newer photo came meanwhile (a box or new weights on this one are fine).
    const ticket = state.photoTicket;
    canvas.toBlob((blob) => { if (blob && state.photoTicket === ticket) setQueryImage(URL.createObjectURL(blob)); }, 'image/jpeg', 0.9);
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
    (options.standalone ? document : host).addEventListener('paste', (e) => {
      const file = [...(e.clipboardData?.files || [])][0];
      if (file) handleFile(file);
    });
    $('camera-open').addEventListener('click', openCamera);
    $('camera-close').addEventListener('click', closeCamera);
    $('camera-shutter').addEventListener('click', shutter);
    $('weight-text').addEventListener('input', onWeightsChanged);
    $('weight-image').addEventListener('input', onWeightsChanged);
    $('weights-reset').addEventListener('click', () => { resetWeights(); if (state.lastRanking) ask(rerankRequest(), 'Re-ranking'); });
    $('query-image').addEventListener('error', () => { $('query-image').removeAttribute('src'); });
  }

  // The box drawn on the photo: its region is ranked on release, without decoding the photo again.
  const crop = new CropBox({
    area: $('crop-area'),
    img: $('query-image'),
    box: $('crop-box'),
    onCommit: (region) => ask(rankRegionRequest(region), 'The box'),
    onClear: () => ask(wholePhotoRequest(), 'The whole photo'),
  });
  $('crop-clear').addEventListener('click', () => crop.clear());

  wire();

  async function main() {
    let bundleUrl;
    try {
      bundleUrl = bundleFolderUrl(options.bundle || 'www/demo/', location.href);
    } catch (e) {
      if (!(e instanceof BundleRefused)) throw e;
      setState('error');
      $('status-text').textContent = e.message; // and nothing is fetched from it
      return;
    }
    state.bundleUrl = bundleUrl;
    // Only the app's own page registers the service worker (and may reload once under it): a
    // shop's page is never reloaded, and runs on several threads only where it is isolated itself.
    if (options.standalone) {
      if (singleThreadRequested()) {
        if (await leaveIsolation()) return; // reloading without the isolation service worker
      } else if (await isolateForThreads(() => state.waiting !== null || !$('camera').hidden)) return; // reloading under it
    }
    startModel(bundleUrl);
  }

  main().catch((e) => {
    setState('error');
    $('status-text').textContent = `The app could not start: ${e.message || e}`;
  });
  return state;
}

/** `<clipmatch-search bundle="folder/">`: mounts itself once it is in a document with a bundle. */
export class ClipmatchSearch extends HTMLElement {
  connectedCallback() {
    if (this.state || !this.hasAttribute('bundle')) return;
    this.state = mountSearch(this, { bundle: this.getAttribute('bundle') });
  }
}

if (!customElements.get('clipmatch-search')) customElements.define('clipmatch-search', ClipmatchSearch);
