//! The model a bundle names, loaded from its files as the page loads it: a [`VisionLoader`] for
//! the family bundle.json records, fed no more bytes than it lists for the weights, and the
//! result checked against what bundle.json says (the weights' sha256, the family, the embedding
//! size and the preprocessing), so a bundle whose description and files disagree is refused.

use crate::digest::sha256_hex;
use crate::error::{BundleError, Error, ModelError};
use crate::models::embedder::Embedder;
use crate::models::model::{Engine, Family};
use crate::models::vision_loader::VisionLoader;
use crate::search::bundle::{Bundle, ModelFiles};

/// A bundle's image tower being loaded from slices of its weights file.
pub struct BundleModelLoader {
    entry: ModelFiles,
    listed_sha256: String,
    loader: VisionLoader,
}

impl BundleModelLoader {
    /// `config`, `preprocessor`: the texts of the files `bundle.model` names (`preprocessor`
    /// where it names one); `engine`: `None` for the family's default.
    pub fn new(bundle: &Bundle, engine: Option<Engine>, config: &str, preprocessor: Option<&str>) -> Result<Self, Error> {
        let family = bundle.model.family()?;
        let weights = bundle.weights_file()?;
        let len = usize::try_from(weights.bytes).map_err(|_| ModelError::Weights("the weights file is too large".into()))?;
        let preprocessor = preprocessor.filter(|_| bundle.model.preprocessor.is_some());
        let loader = VisionLoader::new(family, engine, config, preprocessor, Some(len))?;
        Ok(Self { entry: bundle.model.clone(), listed_sha256: weights.sha256.clone(), loader })
    }

    pub fn family(&self) -> Family {
        self.loader.family()
    }

    pub fn engine(&self) -> Engine {
        self.loader.engine()
    }

    /// Feeds the next bytes of the weights file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Error> {
        Ok(self.loader.push(chunk)?)
    }

    /// The model, once the whole file has arrived. `weights_sha256`: the sha256 of the bytes
    /// pushed (the page checks every download), which must be the one bundle.json lists.
    pub fn finish(self, weights_sha256: &str) -> Result<Embedder, Error> {
        if weights_sha256 != self.listed_sha256 {
            return Err(BundleError::WeightsChanged { found: weights_sha256.into(), listed: self.listed_sha256 }.into());
        }
        let family = self.loader.family();
        let embedder = self.loader.finish()?;
        self.entry.check_loaded(family, embedder.model.embedding_dim(), &embedder.preprocess)?;
        Ok(embedder)
    }

    /// Loads the tower from the whole weights file at once, hashing it.
    pub fn load(
        bundle: &Bundle,
        engine: Option<Engine>,
        config: &str,
        preprocessor: Option<&str>,
        weights: &[u8],
    ) -> Result<Embedder, Error> {
        let mut loader = Self::new(bundle, engine, config, preprocessor)?;
        loader.push(weights)?;
        loader.finish(&sha256_hex(weights))
    }
}
