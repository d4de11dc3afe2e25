//! The MobileCLIP image tower alone as a safetensors file, f16, f32, int8 or int4 (convolution and
//! linear weights per output channel, but for the stem and the depthwise convolutions; at int4
//! only linear layers take 4 bits, the rest of those int8): what `clipmatch bundle` ships with the
//! folder's `open_clip_config.json`. A FastViT-MCi tower is written fused
//! ([`super::fastvit::names`], its layout in the file's metadata), so the page reads it as it
//! runs it and quantises what it runs: as onnxruntime's models quantise timm's reparameterised
//! export, the fused 1x1 convolutions and linear layers. A ViT-MCi tower (MobileCLIP-B) is
//! written with open_clip's names (`visual.*`, BatchNorm's step counters left out).

use super::config::{OpenClipConfig, VisionKind};
use super::fastvit::names::{LAYOUT, LAYOUT_KEY};
use super::fastvit::{self, FastVit};
use super::tensors::bad;
use crate::error::ModelError;
use crate::models::export::{export_tensors, ExportDtype, Quantisable, TowerWriter};
use crate::models::safetensors_header;

const PREFIX: &str = "visual.";
/// The convolutional stems: FastViT's, and ViT-MCi's patch embedding (MobileCLIP-B).
const STEMS: [&str; 2] = ["visual.trunk.stem.", "visual.trunk.patch_embed."];
/// The layers that write the embedding: FastViT's classifier head, ViT-MCi's.
const HEADS: [&str; 2] = ["visual.trunk.head.fc.weight", "visual.trunk.head.weight"];

/// Whether a tower tensor is stored as int8 at `--dtype int8`: the weights of convolutions and
/// linear layers (rows are output channels), except the stem's and the depthwise convolutions',
/// which stay f16. Measured on a full-size MobileCLIP2-S0 with calibrated BatchNorm (fixture
/// photos, `examples/export_fidelity.rs`): quantising those too left the int8 tower ten times
/// further from f32 (1 - cosine up to 2.9e-4 against 2.9e-5) for 0.2 MB less (11.9 MB, 12.1 MB).
/// On a full-size MobileCLIP-B, keeping its patch embedding in f16 halved the distance (1 - cosine
/// up to 2.3e-4 against 4.5e-4) for 0.7 MB more (87.7 MB).
///
/// At `--dtype int4` only linear layers (attention and the ViT-MCi blocks) take 4 bits; the
/// convolutions and the head, which writes the embedding, stay int8 ([`Quantisable::Int8`]). With
/// its convolutions in 4 bits too a MobileCLIP2-S0 tower was 7.5 MB but kept f32's top-5 for 39 of
/// 100 grocery photos (int8: 88), and the cosine of (photo - noise) to f32 was 0.979 against
/// onnxruntime's q4 model's 0.9997 (which leaves convolutions in f32); see BENCHMARKS.md.
fn is_quantised(name: &str, shape: &[usize]) -> Quantisable {
    let depthwise = shape.len() == 4 && shape[1] == 1;
    let convolution = shape.len() == 4;
    // A fused MobileOne 1x1 block after each downsampling (its identity BatchNorm on the
    // diagonal, which sets each row's int8 step and leaves the rest coarse): kept f16, as the
    // stem. Quantised, a full-size MobileCLIP2-S0's fused int8 tower was at cosine 0.99930 to f32
    // (under the 0.9995 `bundle` keeps).
    let fused_identity = name.ends_with(".downsample.pointwise.weight");
    if !name.ends_with(".weight") || shape.len() < 2 || STEMS.iter().any(|stem| name.starts_with(stem)) || depthwise || fused_identity {
        Quantisable::No
    } else if HEADS.contains(&name) || convolution {
        Quantisable::Int8
    } else {
        Quantisable::Yes
    }
}

/// The image tower of an `open_clip_model.safetensors` (`config`: its `open_clip_config.json`),
/// stored as `dtype`.
pub fn vision_tower(config: &str, weights: &[u8], dtype: ExportDtype) -> Result<Vec<u8>, ModelError> {
    let config = OpenClipConfig::from_json(config)?;
    match config.vision.kind {
        VisionKind::FastVit(_) => fused_tower(&config, weights, dtype),
        VisionKind::VitMci => open_clip_form(weights, dtype),
    }
}

/// The tower with open_clip's names, as it is in the checkpoint (what bundles of FastViT towers
/// held before they were written fused; the page still reads those).
pub fn open_clip_form(weights: &[u8], dtype: ExportDtype) -> Result<Vec<u8>, ModelError> {
    let st = safetensors_header::deserialize(weights).map_err(bad)?;
    let mut tower: Vec<(String, Vec<usize>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n.starts_with(PREFIX) && !n.ends_with(".num_batches_tracked"))
        .map(|(n, view)| (n, view.shape().to_vec()))
        .collect();
    if tower.is_empty() {
        return Err(bad("the file has no image tower (no visual.* tensors)".into()));
    }
    tower.sort_unstable();
    export_tensors(weights, tower, dtype, is_quantised)
}

/// A FastViT-MCi tower fused ([`fastvit::fuse`]; a file already fused is written again as it is)
/// and stored as `dtype`, checked to load.
fn fused_tower(config: &OpenClipConfig, weights: &[u8], dtype: ExportDtype) -> Result<Vec<u8>, ModelError> {
    let tensors = fastvit::fused_tensors(config, weights)?;
    let mut out = TowerWriter::new(dtype).with_metadata(LAYOUT_KEY, LAYOUT);
    for (name, shape, values) in tensors {
        let how = is_quantised(&name, &shape);
        out.add(name, shape, &values, how);
    }
    let bytes = out.finish()?;
    FastVit::load(config, &bytes)?;
    Ok(bytes)
}
