// transformers.js's image features for the photo chosen, as a shop's page using it would compute
// them: the model and its processor from the site's own `model/` folder (config.json,
// preprocessor_config.json, onnx/vision_model_quantized.onnx: the `q8` dtype), the runtime wasm
// from the site's `ort/` (the files transformers.js would take from jsDelivr).
import { AutoProcessor, CLIPVisionModelWithProjection, RawImage, env } from './transformers.web.min.js';

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = new URL('./', import.meta.url).href;
env.useBrowserCache = false;
env.backends.onnx.wasm.wasmPaths = {
  mjs: new URL('./ort/ort-wasm-simd-threaded.asyncify.mjs', import.meta.url).href,
  wasm: new URL('./ort/ort-wasm-simd-threaded.asyncify.wasm', import.meta.url).href,
};

const loaded = Promise.all([
  AutoProcessor.from_pretrained('model'),
  CLIPVisionModelWithProjection.from_pretrained('model', { dtype: 'q8', device: 'wasm' }),
]);
loaded.then(() => { document.body.dataset.state = 'ready'; }, (e) => { document.body.dataset.state = 'error'; document.querySelector('#answer').textContent = String(e); });

document.querySelector('#file-input').addEventListener('change', async (event) => {
  try {
    const [processor, model] = await loaded;
    const image = await RawImage.fromBlob(event.target.files[0]);
    const { image_embeds: embeds } = await model(await processor(image));
    document.querySelector('#answer').textContent = `${embeds.dims.join('x')}: ${Array.from(embeds.data.slice(0, 3)).join(', ')}`;
    document.body.dataset.state = 'answered';
  } catch (e) {
    document.querySelector('#answer').textContent = String(e);
    document.body.dataset.state = 'error';
  }
});
