//! What makes a build's vectors and thumbnails what they are: the model's weights, the
//! preprocessing, the engine that runs the model and the thumbnails' size. Checkpoints, shards
//! and updates are checked against it before anything of theirs is used; and the digest of a
//! build's input list, which ties shards and checkpoints to the list they were made from.

use serde::{Deserialize, Serialize};

use crate::digest::sha256_hex;
use crate::models::config::PreprocessConfig;
use crate::search::catalog::ModelInfo;
use crate::search::catalog_builder::SourceItem;
use crate::search::item_fields::ItemFields;

/// The settings on which every vector and thumbnail of a build depends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// The model as a catalog records it (its name is only a label: it changes no vector).
    pub model: ModelInfo,
    pub preprocessing: PreprocessConfig,
    /// `ours` or `candle` ([`crate::models::model::Engine::name`]).
    pub engine: String,
    /// Longest side of the thumbnails, in pixels.
    pub thumbnail_side: u32,
}

impl Recipe {
    /// What differs between `self` (what is asked for now) and `other` (what something was
    /// made with) that would change a vector or a thumbnail, said in a few words; `None` if
    /// nothing does.
    pub fn difference(&self, other: &Recipe) -> Option<String> {
        let (a, b) = (&self.model, &other.model);
        if a.weights_sha256 != b.weights_sha256 {
            return Some(format!("another model (weights sha256 {}, not {})", b.weights_sha256, a.weights_sha256));
        }
        if a.embedding_dim != b.embedding_dim {
            return Some(format!("{}-dimensional vectors, not {}", b.embedding_dim, a.embedding_dim));
        }
        if self.preprocessing != other.preprocessing {
            return Some(format!("other preprocessing ({:?}, not {:?})", other.preprocessing, self.preprocessing));
        }
        if self.engine != other.engine {
            return Some(format!("the {} engine, not {}", other.engine, self.engine));
        }
        if self.thumbnail_side != other.thumbnail_side {
            return Some(format!("{} px thumbnails, not {}", other.thumbnail_side, self.thumbnail_side));
        }
        None
    }
}

/// sha256 of a build's whole input list, in order: each item's id, name, description, image and fields
/// as the list gives them (not the images' contents, which each shard reads for its own items).
pub fn inputs_sha256(items: &[SourceItem]) -> String {
    #[derive(Serialize)]
    struct Row<'a> {
        id: &'a str,
        name: &'a str,
        description: Option<&'a str>,
        image: &'a str,
        // Not written when empty: input lists without fields hash as before fields existed.
        #[serde(skip_serializing_if = "ItemFields::is_empty")]
        fields: &'a ItemFields,
    }
    let rows: Vec<Row> = items
        .iter()
        .map(|s| Row { id: &s.id, name: &s.name, description: s.description.as_deref(), image: &s.image, fields: &s.fields })
        .collect();
    sha256_hex(&serde_json::to_vec(&rows).expect("rows serialise"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> Recipe {
        Recipe {
            model: ModelInfo { name: "m".into(), weights_sha256: "ab".repeat(32), equivalent_weights_sha256: vec![], embedding_dim: 16 },
            preprocessing: PreprocessConfig::default(),
            engine: "ours".into(),
            thumbnail_side: 256,
        }
    }

    #[test]
    fn only_what_changes_vectors_or_thumbnails_differs() {
        let a = recipe();
        let renamed = Recipe { model: ModelInfo { name: "other label".into(), ..a.model.clone() }, ..a.clone() };
        assert_eq!(a.difference(&renamed), None);
        let other = Recipe { model: ModelInfo { weights_sha256: "cd".repeat(32), ..a.model.clone() }, ..a.clone() };
        assert!(a.difference(&other).unwrap().starts_with("another model"));
        let engine = Recipe { engine: "candle".into(), ..a.clone() };
        assert_eq!(a.difference(&engine).unwrap(), "the candle engine, not ours");
        let thumbs = Recipe { thumbnail_side: 128, ..a.clone() };
        assert_eq!(a.difference(&thumbs).unwrap(), "128 px thumbnails, not 256");
        let mut pre = a.clone();
        pre.preprocessing.mean[0] += 1e-7;
        assert!(a.difference(&pre).unwrap().starts_with("other preprocessing"));
    }

    #[test]
    fn the_input_digest_changes_with_any_field_and_the_order() {
        let item = |id: &str, name: &str| SourceItem { id: id.into(), name: name.into(), description: None, image: format!("{id}.jpg"), fields: Default::default() };
        let list = vec![item("a", "A"), item("b", "B")];
        let d = inputs_sha256(&list);
        assert_eq!(d, inputs_sha256(&list.clone()));
        assert_ne!(d, inputs_sha256(&[list[1].clone(), list[0].clone()]));
        assert_ne!(d, inputs_sha256(&[item("a", "A "), list[1].clone()]));
        let described = SourceItem { description: Some(String::new()), ..list[0].clone() };
        assert_ne!(d, inputs_sha256(&[described, list[1].clone()]));
    }
}
