//! The image tower: timm's FastViT-MCi (MCi0/1/2) as candle-transformers' `fastvit` builds it,
//! with its shape taken from the file (stage depths, stem width, MLP ratio, embedding size) and
//! the file's tensor names checked against the ones that shape has.

use std::collections::BTreeSet;

use candle_nn::{Func, VarBuilder};
use candle_transformers::models::fastvit;

use super::config::{MciKind, VisionSpec};
use super::tensors::{bad, Tensors};
use crate::error::ModelError;

const PREFIX: &str = "visual.trunk";

/// The tower's shape as read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisionShape {
    /// Blocks per stage.
    pub depths: [usize; 4],
    /// Stem width (stage `s` is `stem << s` wide).
    pub stem_width: usize,
    pub mlp_ratio: usize,
    pub embed_dim: usize,
}

impl VisionShape {
    /// Reads the shape from the tensors and checks it is an MCi's: four stages doubling in
    /// width, the published depths and widths when the config names timm's own model.
    pub fn infer(t: &Tensors, spec: &VisionSpec, kind: MciKind) -> Result<Self, ModelError> {
        let stem_width = t.dim(&format!("{PREFIX}.stem.0.conv_kxk.0.conv.weight"), 4, 0)?;
        let mut depths = [0usize; 4];
        let stage_prefix = format!("{PREFIX}.stages.");
        for name in t.names() {
            let Some(rest) = name.strip_prefix(&stage_prefix) else { continue };
            let mut parts = rest.split('.');
            let stage: usize = parts.next().and_then(|s| s.parse().ok()).unwrap_or(usize::MAX);
            if stage >= 4 {
                return Err(bad(format!(
                    "tensor {name} belongs to a fifth stage: MCi3/MCi4 (MobileCLIP2-S3/S4) are not supported"
                )));
            }
            if parts.next() == Some("blocks") {
                if let Some(block) = parts.next().and_then(|b| b.parse::<usize>().ok()) {
                    depths[stage] = depths[stage].max(block + 1);
                }
            }
        }
        if let Some(empty) = depths.iter().position(|&d| d == 0) {
            return Err(bad(format!("stage {empty} of the image tower has no blocks")));
        }
        for (stage, _) in depths.iter().enumerate() {
            let name = format!("{PREFIX}.stages.{stage}.blocks.0.mlp.fc2.bias");
            let width = t.dim(&name, 1, 0)?;
            if width != stem_width << stage {
                return Err(bad(format!(
                    "stage {stage} is {width} wide; an MCi stage is twice the previous ({} here)",
                    stem_width << stage
                )));
            }
        }
        let hidden = t.dim(&format!("{PREFIX}.stages.0.blocks.0.mlp.fc1.bias"), 1, 0)?;
        if hidden % stem_width != 0 {
            return Err(bad(format!("stage 0's MLP is {hidden} wide, not a multiple of {stem_width}")));
        }
        let embed_dim = t.dim(&format!("{PREFIX}.head.fc.weight"), 2, 0)?;
        let shape = Self { depths, stem_width, mlp_ratio: hidden / stem_width, embed_dim };
        let (published_depths, published_width) = kind.published();
        if spec.published_shape && (depths, stem_width) != (published_depths, published_width) {
            return Err(bad(format!(
                "{} has depths {published_depths:?} and stem width {published_width}; the file has {depths:?} and {stem_width}",
                spec.timm_model_name
            )));
        }
        if shape.mlp_ratio != 3 {
            return Err(bad(format!("the MLP ratio is {}; FastViT-MCi's is 3", shape.mlp_ratio)));
        }
        Ok(shape)
    }

    /// Every tensor name this tower has in an open_clip checkpoint (timm's unfused form).
    pub fn tensor_names(&self) -> BTreeSet<String> {
        let mut names = Names::default();
        names.mobileone(&format!("{PREFIX}.stem.0"), Branches { scale: true, ..Branches::KXK });
        names.mobileone(&format!("{PREFIX}.stem.1"), Branches { scale: true, ..Branches::KXK });
        names.mobileone(&format!("{PREFIX}.stem.2"), Branches { identity: true, ..Branches::KXK });
        for (stage, &depth) in self.depths.iter().enumerate() {
            let s = format!("{PREFIX}.stages.{stage}");
            if stage > 0 {
                names.conv_bn(&format!("{s}.downsample.proj.0.large_conv"));
                names.conv_bn(&format!("{s}.downsample.proj.0.small_conv"));
                if stage >= 2 {
                    names.se(&format!("{s}.downsample.proj.0.se"));
                }
                names.mobileone(&format!("{s}.downsample.proj.1"), Branches { identity: true, ..Branches::KXK });
            }
            if stage == 3 {
                names.weight_bias(&format!("{s}.pos_emb.pos_enc"));
            }
            for block in 0..depth {
                let b = format!("{s}.blocks.{block}");
                names.conv_bn(&format!("{b}.mlp.conv"));
                names.weight_bias(&format!("{b}.mlp.fc1"));
                names.weight_bias(&format!("{b}.mlp.fc2"));
                if stage == 3 {
                    names.add(format!("{b}.layer_scale_1.gamma"));
                    names.add(format!("{b}.layer_scale_2.gamma"));
                    names.bn(&format!("{b}.norm"));
                    names.add(format!("{b}.token_mixer.qkv.weight"));
                    names.weight_bias(&format!("{b}.token_mixer.proj"));
                } else {
                    names.add(format!("{b}.layer_scale.gamma"));
                    names.add(format!("{b}.token_mixer.layer_scale.gamma"));
                    names.mobileone(&format!("{b}.token_mixer.mixer"), Branches { scale: true, identity: true, ..Branches::KXK });
                    names.mobileone(&format!("{b}.token_mixer.norm"), Branches { identity: true, ..Branches::NONE });
                }
            }
        }
        names.mobileone(&format!("{PREFIX}.final_conv"), Branches { scale: true, se: true, ..Branches::KXK });
        names.weight_bias(&format!("{PREFIX}.head.fc"));
        names.0
    }

    /// candle-transformers' FastViT for this shape, `image -> embedding`.
    pub fn build(&self, vb: VarBuilder) -> Result<Func<'static>, candle_core::Error> {
        let cfg = fastvit::Config {
            exp_ratio: self.mlp_ratio,
            in_channels: self.stem_width,
            blocks: self.depths,
            attn: true,
            lkc_use_act: true,
        };
        fastvit::fastvit(&cfg, self.embed_dim, vb.pp(PREFIX))
    }
}

/// Which branches a MobileOne block has (timm's unfused training form).
#[derive(Clone, Copy)]
struct Branches {
    kxk: bool,
    scale: bool,
    identity: bool,
    se: bool,
}

impl Branches {
    const NONE: Self = Self { kxk: false, scale: false, identity: false, se: false };
    const KXK: Self = Self { kxk: true, ..Self::NONE };
}

#[derive(Default)]
struct Names(BTreeSet<String>);

impl Names {
    fn add(&mut self, name: String) {
        self.0.insert(name);
    }

    fn weight_bias(&mut self, p: &str) {
        self.add(format!("{p}.weight"));
        self.add(format!("{p}.bias"));
    }

    fn bn(&mut self, p: &str) {
        self.weight_bias(p);
        self.add(format!("{p}.running_mean"));
        self.add(format!("{p}.running_var"));
    }

    fn conv_bn(&mut self, p: &str) {
        self.add(format!("{p}.conv.weight"));
        self.bn(&format!("{p}.bn"));
    }

    fn se(&mut self, p: &str) {
        self.weight_bias(&format!("{p}.fc1"));
        self.weight_bias(&format!("{p}.fc2"));
    }

    fn mobileone(&mut self, p: &str, b: Branches) {
        if b.kxk {
            self.conv_bn(&format!("{p}.conv_kxk.0"));
        }
        if b.scale {
            self.conv_bn(&format!("{p}.conv_scale"));
        }
        if b.identity {
            self.bn(&format!("{p}.identity"));
        }
        if b.se {
            self.se(&format!("{p}.se"));
        }
    }
}

