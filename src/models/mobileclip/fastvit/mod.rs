//! MobileCLIP's FastViT-MCi image tower (MCi0/1/2: MobileCLIP-S0/S1/S2, MobileCLIP2-S0/S2 and
//! narrower models of those kinds) on this crate's kernels, in the inference form timm's
//! `reparameterize_model` gives it and further fused ([`fuse`], [`names`]): every MobileOne
//! block, large-kernel convolution and ConvMlp convolution one convolution with bias, the
//! BatchNorms and layer scales folded away. No candle: the page runs it from the package without
//! candle. The tower is read from a fused file (what `clipmatch bundle` writes, its layout in the
//! file's metadata) as it is, int8 weights kept int8, or from open_clip's checkpoint (or a
//! timm-reparameterised one) fused at load.
//!
//! One image at a time goes through the tower, NCHW, in buffers allocated once for the model's
//! image size ([`Workspace`]) and reused for every image; a batch is its images one after
//! another, so each gets exactly what it gets alone.

pub mod fuse;
mod layers;
pub mod names;
pub mod stored;

use std::sync::Mutex;

use crate::error::ModelError;
use crate::kernels::attention::{attention_head, AttentionScratch, Queries};
use crate::models::clip::encoder::Linear;
use crate::models::mobileclip::config::{MciKind, OpenClipConfig, VisionKind};
use crate::models::mobileclip::vision::VisionShape;
use crate::parallel::{for_each_chunk, DisjointWrites};
use layers::{take_linear, Act, Conv, Se};
use names::{HEAD_DIM, LAYOUT, LAYOUT_KEY};
use stored::{bad, StoredTensors};

const T: &str = "visual.trunk";

/// A downsampling patch embedding: large-kernel depthwise convolution (stride 2, squeeze-excite,
/// GELU), then a 1x1 convolution and GELU.
struct Downsample {
    conv: Conv,
    se: Option<Se>,
    pointwise: Conv,
}

/// ConvMlp, added to its input: depthwise 7x7, 1x1 up, GELU, 1x1 down.
struct Mlp {
    conv: Conv,
    fc1: Conv,
    fc2: Conv,
}

/// Attention over the pixels of a stage (heads of [`HEAD_DIM`]), added to its input.
struct Attention {
    qkv: Linear,
    proj: Linear,
}

enum Mixer {
    /// RepMixer: a depthwise convolution added to its input.
    Rep(Conv),
    Attention(Attention),
}

struct Block {
    mixer: Mixer,
    mlp: Mlp,
}

struct Stage {
    downsample: Option<Downsample>,
    /// The positional convolution, added to its input.
    pos_emb: Option<Conv>,
    blocks: Vec<Block>,
    width: usize,
    /// The feature map's side in this stage.
    side: usize,
}

/// Buffers of one image's forward pass, sized for the model's image size: three of the largest
/// feature map, one of the largest of the stem's first output and the MLPs' hidden maps, and the
/// attention stages' token rows.
#[derive(Default)]
struct Workspace {
    x: Vec<f32>,
    y: Vec<f32>,
    t: Vec<f32>,
    wide: Vec<f32>,
    tokens: Vec<f32>,
    qkv: Vec<f32>,
    attended: Vec<f32>,
    pooled: Vec<f32>,
}

impl Workspace {
    fn bytes(&self) -> usize {
        [
            &self.x,
            &self.y,
            &self.t,
            &self.wide,
            &self.tokens,
            &self.qkv,
            &self.attended,
            &self.pooled,
        ]
        .iter()
        .map(|b| b.len() * 4)
        .sum()
    }
}

/// The tensors of a FastViT-MCi tower in the fused form: read as they are from a file in that
/// layout (int8 weights kept int8), fused from open_clip's or timm's form otherwise.
fn fused_form(config: &OpenClipConfig, weights: &[u8]) -> Result<StoredTensors, ModelError> {
    let text = super::text::tensor_names(&config.text);
    let other = |name: &str| text.contains(name) || name == "logit_scale";
    let src = StoredTensors::read(weights, "visual.", other)?;
    match src.metadata(LAYOUT_KEY) {
        Some(LAYOUT) => Ok(src),
        Some(other) => Err(bad(format!(
            "the weights are in layout {:?}; this version reads {LAYOUT:?} (bundle the model again with this version)",
            other.chars().take(40).collect::<String>()
        ))),
        None => fuse::fuse(src),
    }
}

/// The FastViT-MCi variant `config` names, or why this engine cannot run it.
fn fastvit_kind(config: &OpenClipConfig) -> Result<MciKind, ModelError> {
    match config.vision.kind {
        VisionKind::FastVit(kind) => Ok(kind),
        _ => Err(bad(format!("{} is not a FastViT-MCi tower; this engine runs FastViT only", config.vision.timm_model_name))),
    }
}

/// The fused tensors of a tower (name, shape, values as f32) for an export to store.
#[cfg(not(target_arch = "wasm32"))]
pub fn fused_tensors(config: &OpenClipConfig, weights: &[u8]) -> Result<Vec<(String, Vec<usize>, Vec<f32>)>, ModelError> {
    Ok(fused_form(config, weights)?.into_tensors().map(|(name, t)| (name, t.shape, t.values.into_f32())).collect())
}

/// The loaded tower.
pub struct FastVit {
    image_size: usize,
    stem: [Conv; 3],
    stages: Vec<Stage>,
    final_conv: Conv,
    final_se: Option<Se>,
    head: Linear,
    embed_dim: usize,
    workspace: Mutex<Workspace>,
}

impl FastVit {
    /// The tower of `weights` (safetensors): a fused file ([`names::LAYOUT`] in its metadata),
    /// open_clip's checkpoint (the whole model, or `visual.*` alone as older bundles have it) or
    /// a timm-reparameterised one. The config must name a FastViT-MCi tower.
    pub fn load(config: &OpenClipConfig, weights: &[u8]) -> Result<Self, ModelError> {
        let kind = fastvit_kind(config)?;
        Self::from_fused(config, kind, fused_form(config, weights)?)
    }

    /// [`Self::load`] from a file the caller gives up: its bytes are freed once its tensors are
    /// read, before the tower is built, so the page's memory never holds the file, its tensors
    /// and the built tower at once.
    pub fn load_owned(config: &OpenClipConfig, weights: Vec<u8>) -> Result<Self, ModelError> {
        let kind = fastvit_kind(config)?;
        let fused = fused_form(config, &weights)?;
        drop(weights);
        Self::from_fused(config, kind, fused)
    }

    fn from_fused(config: &OpenClipConfig, kind: MciKind, mut fused: StoredTensors) -> Result<Self, ModelError> {
        let model = Self::build(&mut fused, config.vision.image_size as usize)?;
        fused.finish()?;
        let (published_depths, published_width) = kind.published();
        let depths: Vec<usize> = model.stages.iter().map(|s| s.blocks.len()).collect();
        let stem_width = model.stem[0].c_out;
        if config.vision.published_shape
            && (depths.as_slice(), stem_width) != (&published_depths[..], published_width)
        {
            return Err(bad(format!(
                "{} has depths {published_depths:?} and stem width {published_width}; the file has {depths:?} and {stem_width}",
                config.vision.timm_model_name
            )));
        }
        if model.embed_dim != config.embed_dim {
            return Err(bad(format!(
                "the image tower embeds in {} dimensions, model_cfg.embed_dim is {}",
                model.embed_dim, config.embed_dim
            )));
        }
        Ok(model)
    }

    /// Builds the tower from fused tensors, taking each.
    fn build(src: &mut StoredTensors, image_size: usize) -> Result<Self, ModelError> {
        let stem0_in = src
            .shape(&format!("{T}.stem.0.weight"))
            .and_then(|s| s.get(1).copied())
            .unwrap_or(0);
        if stem0_in != 3 {
            return Err(bad(format!(
                "tensor {T}.stem.0.weight must take 3 input channels (RGB)"
            )));
        }
        let s0 = Conv::take(src, &format!("{T}.stem.0"), 3, 2)?;
        let w = s0.c_out;
        let s1 = Conv::take(src, &format!("{T}.stem.1"), w, 2)?;
        let s2 = Conv::take(src, &format!("{T}.stem.2"), s1.c_out, 1)?;
        if s1.c_out != w || s2.c_out != w {
            return Err(bad(format!("the stem's convolutions are not all {w} wide")));
        }
        let mut side = s1.out_side(s0.out_side(image_size));
        let depths = fuse::stage_depths(src.names().map(str::to_string))?;
        if depths.len() != names::MAX_STAGES {
            return Err(bad(format!("the image tower has {} stages; FastViT-MCi has {}", depths.len(), names::MAX_STAGES)));
        }
        let mut c = w;
        let mut stages = Vec::with_capacity(depths.len());
        for (s, &depth) in depths.iter().enumerate() {
            let p = format!("{T}.stages.{s}");
            let downsample = if src.contains(&format!("{p}.downsample.conv.weight")) {
                let conv = Conv::take(src, &format!("{p}.downsample.conv"), c, 2)?;
                let se = Se::take(src, &format!("{p}.downsample.se"), conv.c_out)?;
                let pointwise =
                    Conv::take(src, &format!("{p}.downsample.pointwise"), conv.c_out, 1)?;
                side = conv.out_side(side);
                c = pointwise.c_out;
                Some(Downsample {
                    conv,
                    se,
                    pointwise,
                })
            } else {
                None
            };
            let pos_emb = match src.contains(&format!("{p}.pos_emb.weight")) {
                true => Some(Self::same_width(
                    Conv::take(src, &format!("{p}.pos_emb"), c, 1)?,
                    c,
                )?),
                false => None,
            };
            let mut blocks = Vec::with_capacity(depth);
            for b in 0..depth {
                let bp = format!("{p}.blocks.{b}");
                let mixer = if src.contains(&format!("{bp}.attn.qkv.weight")) {
                    if c % HEAD_DIM != 0 {
                        return Err(bad(format!("stage {s} is {c} wide, not a multiple of attention's {HEAD_DIM}-wide heads")));
                    }
                    let qkv = take_linear(src, &format!("{bp}.attn.qkv"), 3 * c, c, false)?;
                    let proj = take_linear(src, &format!("{bp}.attn.proj"), c, c, false)?;
                    Mixer::Attention(Attention { qkv, proj })
                } else {
                    Mixer::Rep(Self::same_width(
                        Conv::take(src, &format!("{bp}.mixer"), c, 1)?,
                        c,
                    )?)
                };
                let conv = Self::same_width(Conv::take(src, &format!("{bp}.mlp.conv"), c, 1)?, c)?;
                let fc1 = Conv::take(src, &format!("{bp}.mlp.fc1"), c, 1)?;
                let fc2 =
                    Self::same_width(Conv::take(src, &format!("{bp}.mlp.fc2"), fc1.c_out, 1)?, c)?;
                blocks.push(Block {
                    mixer,
                    mlp: Mlp { conv, fc1, fc2 },
                });
            }
            stages.push(Stage {
                downsample,
                pos_emb,
                blocks,
                width: c,
                side,
            });
        }
        let final_conv = Conv::take(src, &format!("{T}.final_conv"), c, 1)?;
        let final_se = Se::take(src, &format!("{T}.final_conv.se"), final_conv.c_out)?;
        let embed_dim = src
            .shape(&format!("{T}.head.fc.weight"))
            .and_then(|s| s.first().copied())
            .unwrap_or(0);
        let head = take_linear(
            src,
            &format!("{T}.head.fc"),
            embed_dim,
            final_conv.c_out,
            false,
        )?;
        let mut model = Self {
            image_size,
            stem: [s0, s1, s2],
            stages,
            final_conv,
            final_se,
            head,
            embed_dim,
            workspace: Mutex::default(),
        };
        model.workspace = Mutex::new(model.new_workspace());
        Ok(model)
    }

    /// `conv`, checked to keep `c` channels.
    fn same_width(conv: Conv, c: usize) -> Result<Conv, ModelError> {
        if conv.c_out != c {
            return Err(bad(format!(
                "a convolution of a {c}-wide stage has {} outputs",
                conv.c_out
            )));
        }
        Ok(conv)
    }

    fn new_workspace(&self) -> Workspace {
        let stem_side = self.stem[0].out_side(self.image_size);
        let side0 = self.stem[1].out_side(stem_side);
        let mut map = self.stem[1].c_out * side0 * side0;
        let mut wide = self.stem[0].c_out * stem_side * stem_side;
        let mut tokens = 0;
        for st in &self.stages {
            let pixels = st.side * st.side;
            map = map.max(st.width * pixels);
            if let Some(d) = &st.downsample {
                map = map.max(d.conv.c_out * pixels);
            }
            for b in &st.blocks {
                wide = wide.max(b.mlp.fc1.c_out * pixels);
                if matches!(b.mixer, Mixer::Attention(_)) {
                    tokens = tokens.max(st.width * pixels);
                }
            }
        }
        let last = self.stages.last().map_or(side0, |s| s.side);
        map = map.max(self.final_conv.c_out * last * last);
        Workspace {
            x: vec![0.0; map],
            y: vec![0.0; map],
            t: vec![0.0; map],
            wide: vec![0.0; wide],
            tokens: vec![0.0; tokens],
            qkv: vec![0.0; 3 * tokens],
            attended: vec![0.0; tokens],
            pooled: vec![0.0; self.final_conv.c_out],
        }
    }

    pub fn image_size(&self) -> usize {
        self.image_size
    }

    pub fn embedding_dim(&self) -> usize {
        self.embed_dim
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> usize {
        let mut n = self.stem.iter().map(Conv::bytes).sum::<usize>()
            + self.final_conv.bytes()
            + self.head.bytes();
        n += self.final_se.as_ref().map_or(0, Se::bytes);
        for st in &self.stages {
            if let Some(d) = &st.downsample {
                n += d.conv.bytes() + d.pointwise.bytes() + d.se.as_ref().map_or(0, Se::bytes);
            }
            n += st.pos_emb.as_ref().map_or(0, Conv::bytes);
            for b in &st.blocks {
                n += b.mlp.conv.bytes() + b.mlp.fc1.bytes() + b.mlp.fc2.bytes();
                n += match &b.mixer {
                    Mixer::Rep(conv) => conv.bytes(),
                    Mixer::Attention(a) => a.qkv.bytes() + a.proj.bytes(),
                };
            }
        }
        n
    }

    /// Bytes of the buffers a forward pass works in (allocated once, reused for every image).
    pub fn workspace_bytes(&self) -> usize {
        self.workspace.lock().map_or(0, |w| w.bytes())
    }

    /// The tower's shape as candle's reader describes it.
    pub fn shape(&self) -> VisionShape {
        let depths = std::array::from_fn(|s| self.stages[s].blocks.len());
        let mlp = &self.stages[0].blocks[0].mlp;
        VisionShape { depths, stem_width: self.stem[0].c_out, mlp_ratio: mlp.fc1.c_out / mlp.fc1.c_in, embed_dim: self.embed_dim }
    }

    /// Linear layers held as int8 (attention's, the squeeze-excite layers', the head).
    pub fn int8_linear_layers(&self) -> usize {
        let mut linears: Vec<&Linear> = vec![&self.head];
        let ses = self.stages.iter().filter_map(|s| s.downsample.as_ref()?.se.as_ref()).chain(&self.final_se);
        linears.extend(ses.flat_map(Se::linears));
        for st in &self.stages {
            for b in &st.blocks {
                if let Mixer::Attention(a) = &b.mixer {
                    linears.extend([&a.qkv, &a.proj]);
                }
            }
        }
        linears.into_iter().filter(|l| matches!(l, Linear::Int8(_))).count()
    }

    /// 1x1 convolutions held as int8.
    pub fn int8_convolutions(&self) -> usize {
        let mut convs: Vec<&Conv> = vec![&self.stem[2]];
        for st in &self.stages {
            convs.extend(st.downsample.as_ref().map(|d| &d.pointwise));
            convs.extend(st.blocks.iter().flat_map(|b| [&b.mlp.fc1, &b.mlp.fc2]));
        }
        convs.into_iter().filter(|c| c.is_int8()).count()
    }

    /// Raw (unnormalised) image embeddings of `n` images given as NCHW pixel values.
    pub fn embed_images(
        &self,
        pixel_values: &[f32],
        n: usize,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let side = self.image_size;
        let per_image = 3 * side * side;
        if n == 0 || pixel_values.len() != n * per_image {
            return Err(ModelError::InputSize(format!(
                "{} pixel values for {n} images of 3x{side}x{side}",
                pixel_values.len()
            )));
        }
        let mut ws = self
            .workspace
            .lock()
            .map_err(|_| ModelError::Engine("an earlier forward pass panicked".into()))?;
        Ok(pixel_values
            .chunks_exact(per_image)
            .map(|image| self.forward(&mut ws, image))
            .collect())
    }

    /// One image through the tower.
    fn forward(&self, ws: &mut Workspace, image: &[f32]) -> Vec<f32> {
        let Workspace {
            x,
            y,
            t,
            wide,
            tokens,
            qkv,
            attended,
            pooled,
        } = ws;
        let [s0, s1, s2] = &self.stem;
        let side = s0.apply(image, self.image_size, wide, None, Act::Gelu);
        let side = s1.apply(wide, side, y, None, Act::Gelu);
        let mut side = s2.apply(y, side, x, None, Act::Gelu);
        for st in &self.stages {
            if let Some(d) = &st.downsample {
                side = d.conv.apply(x, side, y, None, Act::None);
                let pixels = side * side;
                if let Some(se) = &d.se {
                    se.apply(y, pixels);
                }
                layers::activate(&mut y[..d.conv.c_out * pixels], pixels, Act::Gelu);
                d.pointwise.apply(y, side, x, None, Act::Gelu);
            }
            let len = st.width * side * side;
            if let Some(pos) = &st.pos_emb {
                pos.apply(x, side, y, Some(&x[..len]), Act::None);
                std::mem::swap(x, y);
            }
            for b in &st.blocks {
                match &b.mixer {
                    Mixer::Rep(conv) => {
                        conv.apply(x, side, y, Some(&x[..len]), Act::None);
                        std::mem::swap(x, y);
                    }
                    Mixer::Attention(a) => {
                        a.add_to(&mut x[..len], side * side, st.width, tokens, qkv, attended)
                    }
                }
                let m = &b.mlp;
                m.conv.apply(x, side, t, None, Act::None);
                m.fc1.apply(t, side, wide, None, Act::Gelu);
                m.fc2.apply(wide, side, y, Some(&x[..len]), Act::None);
                std::mem::swap(x, y);
            }
        }
        let side = self.final_conv.apply(x, side, y, None, Act::None);
        let (c, pixels) = (self.final_conv.c_out, side * side);
        if let Some(se) = &self.final_se {
            se.apply(y, pixels);
        }
        layers::activate(&mut y[..c * pixels], pixels, Act::Gelu);
        for (p, row) in pooled.iter_mut().zip(y[..c * pixels].chunks_exact(pixels)) {
            *p = row.iter().sum::<f32>() / pixels as f32;
        }
        let mut out = vec![0.0f32; self.embed_dim];
        self.head.forward(pooled, 1, &mut out);
        out
    }
}

impl Attention {
    /// `x += proj(attention(qkv(x)))` for `x` `c x n` (channels by pixels); `tokens`, `qkv` and
    /// `attended` are scratch of at least `n * c`, `3 * n * c` and `n * c` values.
    fn add_to(
        &self,
        x: &mut [f32],
        n: usize,
        c: usize,
        tokens: &mut [f32],
        qkv: &mut [f32],
        attended: &mut [f32],
    ) {
        let (tokens, qkv, attended) = (
            &mut tokens[..n * c],
            &mut qkv[..3 * n * c],
            &mut attended[..n * c],
        );
        for (ch, row) in x.chunks_exact(n).enumerate() {
            for (i, v) in row.iter().enumerate() {
                tokens[i * c + ch] = *v;
            }
        }
        self.qkv.forward(tokens, n, qkv);
        let (heads, d) = (c / HEAD_DIM, HEAD_DIM);
        let out = DisjointWrites::new(attended);
        let qkv = &*qkv;
        for_each_chunk(heads, heads * n * n * d * 2, |range| {
            let mut scratch = AttentionScratch::default();
            let mut head_out = vec![0.0f32; n * d];
            for h in range {
                let q = Queries {
                    q: &qkv[h * d..],
                    ld: 3 * c,
                    rows: n,
                    first: 0,
                };
                attention_head(
                    q,
                    &qkv[c + h * d..],
                    &qkv[2 * c + h * d..],
                    3 * c,
                    n,
                    d,
                    &mut head_out,
                    d,
                    false,
                    &mut scratch,
                );
                for (i, row) in head_out.chunks_exact(d).enumerate() {
                    // SAFETY: head `h` alone writes columns `h * d..(h + 1) * d` of each row.
                    unsafe {
                        std::ptr::copy_nonoverlapping(row.as_ptr(), out.at(i * c + h * d), d)
                    };
                }
            }
        });
        self.proj.forward(attended, n, tokens);
        for (ch, row) in x.chunks_exact_mut(n).enumerate() {
            for (i, v) in row.iter_mut().enumerate() {
                *v += tokens[i * c + ch];
            }
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::kernels::{test_cosine as cosine, test_values};
    use crate::models::clip::Towers;
    use crate::models::mobileclip::MobileClip;

    const FIXTURES: [&str; 2] = ["mobileclip2-s0-narrow", "mobileclip-s1-narrow"];

    fn files(name: &str) -> (String, Vec<u8>) {
        let dir = format!(
            "{}/tests/fixtures/models/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        (
            std::fs::read_to_string(format!("{dir}/open_clip_config.json")).unwrap(),
            std::fs::read(format!("{dir}/open_clip_model.safetensors")).unwrap(),
        )
    }

    #[test]
    fn the_fused_tower_computes_what_candles_unfused_one_does() {
        for name in FIXTURES {
            let (config_json, weights) = files(name);
            let config = OpenClipConfig::from_json(&config_json).unwrap();
            let ours = FastVit::load(&config, &weights).unwrap();
            let candle =
                MobileClip::load_towers(&config_json, &weights, Towers::VisionOnly).unwrap();
            let side = ours.image_size();
            let pixels = test_values(2 * 3 * side * side, 5);
            let a = ours.embed_images(&pixels, 2).unwrap();
            let b = candle.embed_images(&pixels, 2).unwrap();
            for (x, y) in a.iter().zip(&b) {
                let c = cosine(x, y);
                println!("{name}: cosine to candle {c}");
                assert!(c > 0.99999, "{name}: cosine {c}");
            }
        }
    }
}
