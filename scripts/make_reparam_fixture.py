#!/usr/bin/env python3
"""Writes tests/fixtures/models/mobileclip2-s0-narrow/visual_reparameterized.safetensors: the narrow
MobileCLIP2-S0 fixture's image tower after timm's `reparameterize_model` (MobileOne blocks, RepMixer,
the large-kernel convolutions and RepCPE as `reparam_conv`, the rest as trained), as Apple's
reparameterised exports have it, with open_clip's `visual.` prefix; f32. The Rust tests load it
(clipmatch reads timm's inference form too) and hold it to the fixture's reference embeddings.

    python3 scripts/make_reparam_fixture.py
"""
import sys
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file
from timm.utils import reparameterize_model

sys.path.insert(0, str(Path(__file__).parent))
import make_model_fixtures  # noqa: E402  (registers the narrow FastViT-MCi towers with timm)

FOLDER = Path(__file__).resolve().parent.parent / "tests/fixtures/models/mobileclip2-s0-narrow"


def main() -> None:
    make_model_fixtures._register_narrow_mci()
    model = open_clip.create_model(f"local-dir:{FOLDER}").float().eval()
    x = torch.rand(2, 3, 256, 256)
    with torch.no_grad():
        before = model.encode_image(x)
        reparameterize_model(model.visual, inplace=True)
        after = model.encode_image(x)
    cos = torch.nn.functional.cosine_similarity(before, after).min().item()
    assert cos > 0.99999, f"timm's reparameterisation changed the embeddings (cosine {cos})"
    tensors = {f"visual.{k}": v.contiguous() for k, v in model.visual.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(tensors, FOLDER / "visual_reparameterized.safetensors", metadata={"format": "pt"})
    print(f"wrote {len(tensors)} tensors; cosine to the training form {cos:.7f}")


if __name__ == "__main__":
    main()
