#!/usr/bin/env python3
"""Exports a model folder's image tower to ONNX for the browser benchmark (benches/browser/bench.mjs),
plus the 8-bit and 4-bit copies transformers.js's conversion recipe makes: its `_quantized` / q8 model
is onnxruntime's `quantize_dynamic` with QUInt8 weights when the graph has a Conv (onnxruntime's
ConvInteger takes only uint8 weights) and QInt8 otherwise (per_channel and reduce_range off, the
defaults); its q4 model is `MatMulNBitsQuantizer` (4 bits, blocks of 32, symmetric) over the MatMuls.

Model folders, as the hub has them:
  Hugging Face CLIPModel (config.json, model.safetensors)      -> CLIPModel.get_image_features
  open_clip (open_clip_config.json, open_clip_model.safetensors; MobileCLIP, MobileCLIP2)
                                                               -> open_clip encode_image, after
     timm.utils.reparameterize_model (MobileOne branches and BatchNorms fused, as Apple's
     instructions and the public MobileCLIP exports do before exporting)
  Hugging Face SiglipModel (config.json with model_type siglip) -> SiglipModel.get_image_features

Writes into --out:
  vision_f32.onnx    input `pixel_values` [batch, 3, H, W] f32, output `image_embeds` [batch, dim] f32
  vision_int8.onnx   the same, 8-bit with the weight type transformers.js ships (printed)
  vision_int8alt.onnx  8-bit with the other weight type, to show what the choice costs
  vision_q4.onnx     4-bit MatMul weights, as transformers.js's q4
  variants.json      what each file is (the browser benchmark prints it beside the figures)
  identity.onnx      a one-node model, so a benchmark can start onnxruntime's runtime apart from a model
  vision_f32.safetensors   (CLIPModel folders only) the same vision tower + projection for clipmatch
                     (vision_model.*, visual_projection.*; f32), so both engines load the same bytes

and checks each export against the reference library with onnxruntime (CPU) on a random input.

    pip install -r scripts/requirements-fixtures.txt -r benches/requirements-bench.txt
    python3 benches/export_onnx.py --model models/clip-b32-random --out models/clip-b32-random/onnx
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


class ImageFeatures(torch.nn.Module):
    """A model's image features as a module with one tensor in and one out: transformers'
    `get_image_features` (CLIP, SigLIP) or open_clip's `encode_image`."""

    def __init__(self, model, open_clip_model: bool):
        super().__init__()
        self.model = model
        self.open_clip_model = open_clip_model

    def forward(self, pixel_values):
        if self.open_clip_model:
            return self.model.encode_image(pixel_values)
        out = self.model.get_image_features(pixel_values=pixel_values)
        return out if isinstance(out, torch.Tensor) else out.pooler_output


def load_image_features(folder: Path):
    """The folder's model (kind detected from its files) as the ImageFeatures to export (open_clip
    towers reparameterised), the ImageFeatures of the library's own form to check it against, its
    image side and kind."""
    import copy
    import json

    if (folder / "open_clip_config.json").exists():
        import open_clip

        from timm.utils import reparameterize_model

        model = open_clip.create_model(f"local-dir:{folder}").float().eval()
        # As Apple's MobileCLIP instructions and the public MobileCLIP / MobileCLIP2 ONNX exports
        # do before inference or export: MobileOne branches and BatchNorms fused into single
        # convolutions (a no-op for towers without reparameterisable modules). The reference
        # outputs the exports are checked against stay the training form's (see main).
        reference = ImageFeatures(copy.deepcopy(model), True).eval()
        model = reparameterize_model(model)
        size = model.visual.preprocess_cfg["size"]
        size = size[0] if isinstance(size, (tuple, list)) else size
        return ImageFeatures(model, True).eval(), reference, int(size), "open_clip"
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") == "siglip":
        from transformers import SiglipModel

        model = SiglipModel.from_pretrained(folder, dtype=torch.float32).eval()
        module = ImageFeatures(model, False).eval()
        return module, module, model.config.vision_config.image_size, "siglip"
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(folder, dtype=torch.float32).eval()
    module = ImageFeatures(model, False).eval()
    return module, module, model.config.vision_config.image_size, "clip"


def transformers_js_weight_type(path: Path):
    """transformers.js's rule for 8-bit: QUInt8 weights when the graph has a Conv, else QInt8."""
    import onnx
    from onnxruntime.quantization import QuantType

    graph = onnx.load(str(path), load_external_data=False).graph
    has_conv = any(node.op_type == "Conv" for node in graph.node)
    return (QuantType.QUInt8 if has_conv else QuantType.QInt8), has_conv


def quantize_q4(source, path):
    """transformers.js's q4: MatMul weights in 4 bits, blocks of 32, symmetric; the rest f32."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), bits=4, block_size=32, is_symmetric=True,
                                     accuracy_level=None, op_types_to_quantize=("MatMul",))
    quantizer.process()
    model = quantizer.model.model
    model.ir_version = min(model.ir_version, 10)  # onnxruntime-web 1.30 refuses IR 14 (onnx 1.23's default)
    onnx.save(model, str(path))


def export_f32(module, size, path):
    example = torch.zeros(1, 3, size, size)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(
        module, (example,), dynamo=True, input_names=["pixel_values"], output_names=["image_embeds"],
        dynamic_shapes={"pixel_values": {0: batch}}, optimize=True, external_data=False,
    )
    program.save(str(path), external_data=False)


def write_identity(path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    # IR version 10, as the exported models: onnx 1.23 would write 14, which onnxruntime-web 1.30 refuses.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.save(model, str(path))


def write_vision_safetensors(source, path):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(source))
    vision = {k: v.astype(np.float32) for k, v in tensors.items() if k.startswith(("vision_model.", "visual_projection."))}
    save_file(vision, str(path))
    print(f"wrote {path}: {path.stat().st_size / 1e6:.1f} MB, {len(vision)} tensors")


def compare(path, pixel_values, reference, reference_name):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch_axis = session.get_inputs()[0].shape[0]
    if isinstance(batch_axis, int) and batch_axis != len(pixel_values):
        # The exporter fixed the batch axis (SigLIP's attention-pooling probe is repeated per image
        # and torch.export specialises it): check one image at a time, as the benchmark runs it.
        print(f"{path.name}: batch axis fixed at {batch_axis} by the exporter; checked one image at a time")
        got = np.concatenate([session.run(None, {"pixel_values": pixel_values[i:i + 1]})[0] for i in range(len(pixel_values))])
    else:
        (got,) = session.run(None, {"pixel_values": pixel_values})
    diff = np.abs(got - reference).max()
    cos = (got * reference).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(reference, axis=-1))
    centred_ref = reference - reference.mean(0)
    centred_got = got - reference.mean(0)
    ccos = (centred_got * centred_ref).sum(-1) / (np.linalg.norm(centred_got, axis=-1) * np.linalg.norm(centred_ref, axis=-1))
    mb = path.stat().st_size / 1e6
    print(f"{path.name}: {mb:.1f} MB; vs {reference_name} on {len(got)} random images: max abs diff {diff:.3g}, "
          f"cosine min {cos.min():.6f}, centred cosine min {ccos.min():.6f}, output shape {list(got.shape)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model folder: Hugging Face CLIP or SigLIP, or open_clip")
    ap.add_argument("--out", required=True)
    ap.add_argument("--check-batch", type=int, default=3, help="random images in the check (also tests the batch axis)")
    a = ap.parse_args()

    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    module, reference_module, size, kind = load_image_features(Path(a.model))
    reparameterised = module is not reference_module

    f32, int8, int8alt, q4 = (out / f"vision_{v}.onnx" for v in ("f32", "int8", "int8alt", "q4"))
    t = time.perf_counter()
    with torch.no_grad():
        export_f32(module, size, f32)
    print(f"exported {f32} in {time.perf_counter() - t:.1f} s")
    weight_type, has_conv = transformers_js_weight_type(f32)
    other = QuantType.QInt8 if weight_type == QuantType.QUInt8 else QuantType.QUInt8
    for path, wt in ((int8, weight_type), (int8alt, other)):
        t = time.perf_counter()
        quantize_dynamic(str(f32), str(path), weight_type=wt)
        print(f"quantised {path} in {time.perf_counter() - t:.1f} s: weights {wt.name}")
    t = time.perf_counter()
    quantize_q4(f32, q4)
    print(f"quantised {q4} in {time.perf_counter() - t:.1f} s: 4-bit MatMul weights, blocks of 32")
    why = "the graph has a Conv" if has_conv else "the graph has no Conv"
    fused = ", exported after timm.utils.reparameterize_model" if reparameterised else ""
    variants = {
        "f32": f"f32{fused}",
        "int8": f"8-bit, {weight_type.name} weights: what transformers.js ships ({why})",
        "int8alt": f"8-bit, {other.name} weights: not what transformers.js ships",
        "q4": "4-bit MatMul weights (MatMulNBits, blocks of 32, symmetric): transformers.js's q4",
    }
    (out / "variants.json").write_text(json.dumps(variants, indent=1) + "\n", encoding="utf-8")
    write_identity(out / "identity.onnx")
    if kind == "clip":
        write_vision_safetensors(Path(a.model) / "model.safetensors", out / "vision_f32.safetensors")

    pixel_values = torch.from_numpy(np.random.default_rng(0).standard_normal((a.check_batch, 3, size, size), dtype=np.float32))
    with torch.no_grad():
        reference = reference_module(pixel_values).numpy()
    reference_name = "open_clip" if kind == "open_clip" else "transformers"
    for path in (f32, int8, int8alt, q4):
        compare(path, pixel_values.numpy(), reference, reference_name)


if __name__ == "__main__":
    main()
