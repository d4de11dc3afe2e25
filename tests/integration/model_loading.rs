//! A model file that does not fit its config is refused with the name of what is wrong.

use crate::common;

use clipmatch::{ClipModel, ModelError, PreprocessConfig, Towers};
use common::{TINY_CONFIG, TINY_PREPROCESSOR, TINY_WEIGHTS};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn with_vision(key: &str, value: serde_json::Value) -> String {
    let mut cfg: serde_json::Value = serde_json::from_str(TINY_CONFIG).unwrap();
    cfg["vision_config"][key] = value;
    cfg.to_string()
}

#[test]
fn config_with_more_layers_than_the_file() {
    let err = ClipModel::load(&with_vision("num_hidden_layers", 3.into()), TINY_WEIGHTS, None)
        .err()
        .unwrap();
    assert!(matches!(err, ModelError::WeightsMismatch(_)), "{err}");
    assert!(err.to_string().contains("vision_model.encoder.layers.2"), "{err}");
}

#[test]
fn config_with_fewer_layers_than_the_file() {
    let err = ClipModel::load(&with_vision("num_hidden_layers", 1.into()), TINY_WEIGHTS, None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("more than the 1 vision_model layers"), "{err}");
}

#[test]
fn config_with_another_width() {
    let err = ClipModel::load(&with_vision("hidden_size", 64.into()), TINY_WEIGHTS, None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("has shape"), "{err}");
}

#[test]
fn unsupported_activation_and_garbage() {
    let cfg = with_vision("hidden_act", "gelu".into());
    let err = ClipModel::load(&cfg, TINY_WEIGHTS, None).err().unwrap();
    assert!(err.to_string().contains("gelu"), "{err}");
    let err = ClipModel::load(TINY_CONFIG, b"not a safetensors file", None).err().unwrap();
    assert!(matches!(err, ModelError::Weights(_)), "{err}");
    let err = ClipModel::load("{", TINY_WEIGHTS, None).err().unwrap();
    assert!(matches!(err, ModelError::Config(_)), "{err}");
}

#[test]
fn real_configs_parse() {
    let p = PreprocessConfig::from_json(TINY_PREPROCESSOR).unwrap();
    assert_eq!(p, PreprocessConfig::default());
    let cfg = clipmatch::ModelConfig::from_json(TINY_CONFIG).unwrap();
    assert_eq!(cfg.vision.embed_dim, 32);
    assert_eq!(cfg.text.vocab_size, 49408);
    assert_eq!(cfg.projection_dim, 16);
    // A sparse config reads with transformers' defaults (ViT-B/32).
    let sparse = clipmatch::ModelConfig::from_json("{\"model_type\": \"clip\"}").unwrap();
    assert_eq!(sparse.vision.embed_dim, 768);
    assert_eq!(sparse.vision.patch_size, 32);
    assert_eq!(sparse.text.embed_dim, 512);
    let _ = Towers::VisionOnly;
}

#[test]
fn b16_and_l14_layouts_parse_from_their_configs() {
    // The fields of openai/clip-vit-base-patch16 and openai/clip-vit-large-patch14 that differ.
    let b16 = r#"{"model_type":"clip","projection_dim":512,
        "text_config":{"hidden_size":512,"intermediate_size":2048,"num_attention_heads":8,"num_hidden_layers":12},
        "vision_config":{"hidden_size":768,"intermediate_size":3072,"num_attention_heads":12,"num_hidden_layers":12,"patch_size":16,"image_size":224}}"#;
    let l14 = r#"{"model_type":"clip","projection_dim":768,
        "text_config":{"hidden_size":768,"intermediate_size":3072,"num_attention_heads":12,"num_hidden_layers":12},
        "vision_config":{"hidden_size":1024,"intermediate_size":4096,"num_attention_heads":16,"num_hidden_layers":24,"patch_size":14,"image_size":224}}"#;
    let b16 = clipmatch::ModelConfig::from_json(b16).unwrap();
    assert_eq!((b16.vision.patch_size, b16.projection_dim), (16, 512));
    let l14 = clipmatch::ModelConfig::from_json(l14).unwrap();
    assert_eq!((l14.vision.embed_dim, l14.vision.num_hidden_layers, l14.projection_dim), (1024, 24, 768));
    assert_eq!(l14.text.embed_dim, 768);
    // The expected tensor list follows the config: 257 positions for 224/14.
    let names = clipmatch::models::clip::expected_tensors(&l14, Towers::VisionOnly);
    let pos = names.iter().find(|(n, _)| n.ends_with("position_embedding.weight")).unwrap();
    assert_eq!(pos.1, vec![257, 1024]);
}
