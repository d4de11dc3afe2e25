// The search's markup, put into each <clipmatch-search>'s shadow root (ids are unique within it).
// Static text only: every catalog text is inserted later as text, never as HTML.
export const MARKUP = `
<div class="app" part="app">
  <p class="privacy">Your photo never leaves this device: the matching runs inside this page.</p>
  <section id="status" aria-live="polite">
    <div class="progress-row">
      <label for="progress-model">Model</label>
      <progress id="progress-model" max="1" value="0"></progress>
      <span id="progress-model-text" class="progress-text"></span>
    </div>
    <div class="progress-row">
      <label for="progress-catalog">Catalog</label>
      <progress id="progress-catalog" max="1" value="0"></progress>
      <span id="progress-catalog-text" class="progress-text"></span>
    </div>
    <p id="plan-text" class="note" hidden></p>
    <button type="button" id="plan-go" class="button primary" hidden></button>
    <p id="status-text">Loading…</p>
    <p id="model-text" class="note" hidden></p>
    <p id="storage-text" class="note" hidden></p>
    <p id="threads-text" class="note" hidden></p>
  </section>

  <section id="input" aria-label="Photo input">
    <div id="drop-zone" tabindex="0" role="button" aria-describedby="drop-help">
      <p id="drop-help">Drop a photo here, paste one (Ctrl+V), or:</p>
      <div class="buttons">
        <label class="button" for="file-input">Choose a photo</label>
        <input type="file" id="file-input" accept="image/*" class="visually-hidden">
        <label class="button" for="capture-input">Take a photo</label>
        <input type="file" id="capture-input" accept="image/*" capture="environment" class="visually-hidden">
        <button type="button" id="camera-open" class="button">Live camera</button>
      </div>
    </div>
    <div id="camera" hidden>
      <video id="camera-video" playsinline muted></video>
      <div class="buttons">
        <button type="button" id="camera-shutter" class="button primary">Take the photo</button>
        <button type="button" id="camera-close" class="button">Close the camera</button>
      </div>
    </div>
    <p id="input-error" class="error" role="alert" hidden></p>
  </section>

  <section id="answer" hidden>
    <figure id="query">
      <div id="crop-area" tabindex="0" role="group" aria-label="Your photo: draw a box around the product to search only that part" aria-describedby="crop-hint">
        <img id="query-image" alt="Your photo" draggable="false">
        <div id="crop-box" hidden><span class="handle nw"></span><span class="handle ne"></span><span class="handle sw"></span><span class="handle se"></span></div>
      </div>
      <figcaption id="query-caption"></figcaption>
      <p id="crop-hint" class="note">Drag a box around the product to search only that part. Keys: with the photo focused, an arrow makes a box and the arrows move it, Shift+arrows resize it, Escape goes back to the whole photo.</p>
      <button type="button" id="crop-clear" class="button" hidden>Whole photo</button>
    </figure>
    <div id="results">
      <p id="crop-status" aria-live="polite"></p>
      <p id="verdict" aria-live="polite"></p>
      <ol id="result-list"></ol>
    </div>
  </section>

  <details id="advanced">
    <summary>Advanced: how results are scored, and how the search runs</summary>
    <p>Each product scores <code>name weight × similarity to its name</code> + <code>image weight × similarity to its photo</code>.</p>
    <p id="weights-source"></p>
    <p id="threshold-meaning"></p>
    <div class="weight-row">
      <label for="weight-text">Name text weight</label>
      <input type="range" id="weight-text" min="0" max="3" step="0.1">
      <output id="weight-text-value" for="weight-text"></output>
    </div>
    <div class="weight-row">
      <label for="weight-image">Image weight</label>
      <input type="range" id="weight-image" min="0" max="3" step="0.1">
      <output id="weight-image-value" for="weight-image"></output>
    </div>
    <button type="button" id="weights-reset" class="button">Back to the catalog's weights</button>
    <p id="threads-detail"></p>
  </details>
</div>
<template id="result-template">
  <li class="result">
    <img class="thumb" alt="">
    <div class="info">
      <div class="name"></div>
      <div class="fields" hidden></div>
      <div class="score"></div>
      <div class="bar" aria-hidden="true"><span class="bar-text"></span><span class="bar-image"></span></div>
      <div class="breakdown"></div>
    </div>
  </li>
</template>
`;
