//! Reading a Hugging Face `SiglipModel` `config.json` into candle-transformers' `siglip::Config`,
//! refusing what candle (or this app) would run differently from transformers: NaFlex
//! (`Siglip2Model`), no vision head, a text head of another width, activations transformers
//! names differently, or a text tower too short for the 64 tokens the processor pads to.

use candle_transformers::models::siglip;
use serde::Deserialize;

use crate::error::ModelError;
use crate::models::config::PreprocessConfig;
use crate::models::siglip::TEXT_LEN;

pub const SUPPORTED: &str = "supported: google/siglip-base-patch16-224, google/siglip2-base-patch16-224, \
google/siglip2-base-patch32-256 and other fixed-resolution SiglipModel folders (model_type \"siglip\")";

/// The fields candle's config leaves out, with transformers' defaults.
#[derive(Deserialize)]
struct Outline {
    #[serde(default)]
    architectures: Vec<String>,
    text_config: TextOutline,
    vision_config: VisionOutline,
}

#[derive(Deserialize)]
struct TextOutline {
    projection_size: Option<usize>,
    hidden_act: Option<String>,
}

#[derive(Deserialize)]
struct VisionOutline {
    #[serde(default = "yes")]
    vision_use_head: bool,
    hidden_act: Option<String>,
}

fn yes() -> bool {
    true
}

/// A SigLIP checkpoint's shape, as candle takes it.
#[derive(Debug, Clone)]
pub struct SiglipConfig {
    pub candle: siglip::Config,
}

impl SiglipConfig {
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let bad = |m: String| ModelError::UnsupportedModel(format!("{m}; {SUPPORTED}"));
        let mut value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| ModelError::Config(format!("not valid JSON: {e}")))?;
        // transformers reads a missing tower config as all defaults.
        if let Some(top) = value.as_object_mut() {
            for tower in ["text_config", "vision_config"] {
                top.entry(tower).or_insert_with(|| serde_json::json!({}));
            }
        }
        match value.get("model_type").and_then(|t| t.as_str()) {
            Some("siglip") => {}
            Some("siglip2") => return Err(bad("Siglip2Model (NaFlex, variable resolution) is not supported".into())),
            Some(other) => return Err(bad(format!("model_type is {other:?}"))),
            None => return Err(bad("config.json has no model_type".into())),
        }
        let outline: Outline = serde_json::from_value(value.clone())
            .map_err(|e| ModelError::Config(format!("not a SiglipModel config: {e}")))?;
        if let Some(arch) = outline.architectures.iter().find(|a| a.as_str() != "SiglipModel") {
            return Err(bad(format!("the architecture is {arch}")));
        }
        if !outline.vision_config.vision_use_head {
            return Err(bad("vision_use_head is false, so the model makes no pooled image embedding".into()));
        }
        for (tower, act) in [
            ("text_config", &outline.text_config.hidden_act),
            ("vision_config", &outline.vision_config.hidden_act),
        ] {
            if let Some(act) = act.as_deref().filter(|a| !matches!(*a, "gelu_pytorch_tanh" | "gelu")) {
                return Err(bad(format!("{tower}.hidden_act is {act:?} (gelu_pytorch_tanh or gelu are run)")));
            }
        }
        let candle: siglip::Config = serde_json::from_value(value)
            .map_err(|e| ModelError::Config(format!("not a SiglipModel config: {e}")))?;
        let (t, v) = (&candle.text_config, &candle.vision_config);
        let projection = outline.text_config.projection_size.unwrap_or(t.hidden_size);
        if projection != t.hidden_size {
            return Err(bad(format!(
                "text_config.projection_size {projection} differs from its hidden_size {} (candle's text head is square)",
                t.hidden_size
            )));
        }
        if t.hidden_size != v.hidden_size {
            return Err(bad(format!(
                "the text tower's width {} differs from the vision tower's {}",
                t.hidden_size, v.hidden_size
            )));
        }
        let shape_problem = if v.patch_size == 0 || v.image_size % v.patch_size != 0 {
            Some(format!("image_size {} is not a multiple of patch_size {}", v.image_size, v.patch_size))
        } else if v.num_channels != 3 {
            Some(format!("num_channels is {} (RGB, 3, is read)", v.num_channels))
        } else if [t.num_attention_heads, v.num_attention_heads].contains(&0)
            || t.hidden_size % t.num_attention_heads != 0
            || v.hidden_size % v.num_attention_heads != 0
        {
            Some("hidden_size is not a multiple of num_attention_heads".into())
        } else if t.max_position_embeddings < TEXT_LEN {
            Some(format!(
                "text_config.max_position_embeddings is {}, under the {TEXT_LEN} tokens texts are padded to",
                t.max_position_embeddings
            ))
        } else {
            None
        };
        match shape_problem {
            Some(p) => Err(ModelError::Config(p)),
            None => Ok(Self { candle }),
        }
    }

    /// Dimension of the joint embedding space (the vision tower's width).
    pub fn embedding_dim(&self) -> usize {
        self.candle.vision_config.hidden_size
    }

    pub fn image_size(&self) -> usize {
        self.candle.vision_config.image_size
    }

    /// Refuses preprocessing of another size than the image tower's.
    pub fn check_preprocess(&self, preprocess: &PreprocessConfig) -> Result<(), ModelError> {
        if self.image_size() != preprocess.crop_width as usize {
            return Err(ModelError::Preprocessor(format!(
                "size {} differs from the image tower's image_size {}",
                preprocess.crop_width,
                self.image_size()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/models/siglip2-base-narrow/config.json");

    fn edited(f: impl FnOnce(&mut serde_json::Value)) -> Result<SiglipConfig, ModelError> {
        let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        f(&mut v);
        SiglipConfig::from_json(&v.to_string())
    }

    fn refusal(f: impl FnOnce(&mut serde_json::Value)) -> String {
        edited(f).err().expect("refused").to_string()
    }

    #[test]
    fn the_fixture_reads_with_its_sizes() {
        let c = edited(|_| {}).unwrap();
        assert_eq!((c.embedding_dim(), c.image_size()), (32, 224));
        assert_eq!(c.candle.text_config.vocab_size, 1000);
        assert_eq!(c.candle.vision_config.patch_size, 16);
    }

    #[test]
    fn a_sparse_config_reads_with_transformers_defaults() {
        let json = r#"{"architectures": ["SiglipModel"], "model_type": "siglip",
            "text_config": {"vocab_size": 256000}, "vision_config": {"image_size": 256, "patch_size": 32}}"#;
        let c = SiglipConfig::from_json(json).unwrap();
        let (t, v) = (&c.candle.text_config, &c.candle.vision_config);
        assert_eq!((c.embedding_dim(), c.image_size(), v.patch_size, v.num_hidden_layers), (768, 256, 32, 12));
        assert_eq!((t.vocab_size, t.hidden_size, t.max_position_embeddings, t.intermediate_size), (256000, 768, 64, 3072));
        let c = SiglipConfig::from_json(r#"{"model_type": "siglip"}"#).unwrap();
        assert_eq!((c.candle.text_config.vocab_size, c.candle.vision_config.patch_size), (32000, 16));
    }

    #[test]
    fn other_families_are_refused_naming_what_is_supported() {
        let e = refusal(|v| v["model_type"] = "siglip2".into());
        assert!(e.contains("NaFlex") && e.contains("siglip2-base-patch16-224"), "{e}");
        let e = refusal(|v| v["model_type"] = "clip".into());
        assert!(e.contains("\"clip\"") && e.contains("supported"), "{e}");
        let e = refusal(|v| v["architectures"] = serde_json::json!(["Siglip2Model"]));
        assert!(e.contains("Siglip2Model"), "{e}");
    }

    #[test]
    fn what_candle_would_run_differently_is_refused() {
        let e = refusal(|v| v["text_config"]["projection_size"] = 16.into());
        assert!(e.contains("projection_size 16"), "{e}");
        let e = refusal(|v| v["vision_config"]["vision_use_head"] = false.into());
        assert!(e.contains("vision_use_head"), "{e}");
        let e = refusal(|v| v["vision_config"]["hidden_act"] = "quick_gelu".into());
        assert!(e.contains("quick_gelu"), "{e}");
        let e = refusal(|v| v["text_config"]["max_position_embeddings"] = 32.into());
        assert!(e.contains("max_position_embeddings is 32"), "{e}");
        let e = refusal(|v| v["vision_config"]["patch_size"] = 15.into());
        assert!(e.contains("patch_size 15"), "{e}");
    }
}
