//! An update's starting point: the catalog being updated, checked against the build's recipe
//! and vector dtype, and what it lets the build reuse: each image vector by the sha256 of the
//! image file it came from (with the thumbnail file made from it), each name vector by its
//! name, and for i8 catalogs the scales and offsets, so that the vectors it keeps keep their
//! bytes.

use std::collections::HashMap;

use crate::error::UpdateError;
use crate::search::build_recipe::Recipe;
use crate::search::catalog::{Catalog, RankingDefaults, VectorDtype, Vectors};
use crate::search::catalog_builder::Quantisation;

/// A catalog to update.
#[derive(Debug)]
pub struct PreviousCatalog {
    catalog: Catalog,
    /// Item index by the sha256 of its image file.
    by_image: HashMap<String, usize>,
    /// Item index by name.
    by_name: HashMap<String, usize>,
}

impl PreviousCatalog {
    /// `catalog`, if a build with `recipe` storing `dtype` vectors may update it: it records
    /// its images' sha256 (`build --updatable`) and was made with the same model, preprocessing,
    /// engine and thumbnail size, and stores the same dtype.
    pub fn new(catalog: Catalog, recipe: &Recipe, dtype: VectorDtype) -> Result<Self, UpdateError> {
        let m = &catalog.manifest;
        let sources = m.sources.as_ref().ok_or(UpdateError::NotUpdatable)?;
        let made_with = Recipe {
            model: m.model.clone(),
            preprocessing: m.preprocessing.clone(),
            engine: sources.engine.clone(),
            thumbnail_side: sources.thumbnail_side,
        };
        if let Some(diff) = recipe.difference(&made_with) {
            return Err(UpdateError::Recipe(diff));
        }
        if catalog.dtype() != dtype {
            return Err(UpdateError::Dtype { catalog: catalog.dtype().name(), asked: dtype.name() });
        }
        let by_image = sources.image_sha256.iter().enumerate().map(|(i, sha)| (sha.clone(), i)).collect();
        let by_name = m.items.iter().enumerate().map(|(i, item)| (item.name.clone(), i)).collect();
        Ok(Self { catalog, by_image, by_name })
    }

    /// The image vector (as stored: de-quantised for i8) and the thumbnail file (relative to
    /// the catalog folder) of the item whose image file has this sha256.
    pub fn image(&self, sha256: &str) -> Option<(Vec<f32>, &str)> {
        let &i = self.by_image.get(sha256)?;
        let thumbnail = self.catalog.items()[i].thumbnail.as_deref()?;
        Some((self.catalog.image_vector(i).into_owned(), thumbnail))
    }

    /// The name vector (as stored) of an item of this name.
    pub fn name(&self, name: &str) -> Option<Vec<f32>> {
        self.by_name.get(name).map(|&i| self.catalog.name_vector(i).into_owned())
    }

    /// For i8 catalogs, its scales and offsets: the updated catalog stores every vector with
    /// them, so the vectors it keeps are the same bytes.
    pub fn quantisation(&self) -> Quantisation {
        match self.catalog.vectors() {
            Vectors::I8 { scales, offsets, .. } => Quantisation::Keep { scales: *scales, offsets: offsets.clone() },
            Vectors::F32(_) => Quantisation::FromData,
        }
    }

    /// What identifies it: the sha256 of its vectors.
    pub fn vectors_sha256(&self) -> &str {
        &self.catalog.manifest.vectors.sha256
    }

    /// Its ranking defaults (the update keeps those it is not given).
    pub fn ranking(&self) -> &RankingDefaults {
        &self.catalog.manifest.ranking
    }

    pub fn len(&self) -> usize {
        self.catalog.len()
    }

    pub fn is_empty(&self) -> bool {
        self.catalog.is_empty()
    }
}
