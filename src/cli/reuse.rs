//! What a build reuses instead of embedding again, from disk: the checkpoint of a killed run of
//! the same build (its thumbnails in the staging folder, each checked against the sha256 the
//! checkpoint recorded) and the catalog being updated (its thumbnails in its folder).

use std::path::{Path, PathBuf};

use clipmatch::digest::sha256_hex;
use clipmatch::search::catalog_builder::{Reuse, ReusedImage};
use clipmatch::search::checkpoint::Checkpoint;
use clipmatch::search::previous_catalog::PreviousCatalog;

use super::catalog_dir;

/// The embeddings a build may take, by content.
pub struct Known<'a> {
    pub checkpoint: Checkpoint,
    /// The staging folder the checkpoint's thumbnails were written to.
    pub staging: &'a Path,
    /// The catalog being updated, and its folder.
    pub previous: Option<(PreviousCatalog, PathBuf)>,
    /// Longest side of this build's thumbnails (a thumbnail read is a JPEG of at most it).
    pub thumbnail_side: u32,
}

impl Known<'_> {
    fn checkpointed(&self, sha256: &str) -> Option<ReusedImage> {
        let c = self.checkpoint.images.get(sha256)?;
        let thumbnail = catalog_dir::read_thumbnail(self.staging, &c.thumbnail_file, self.thumbnail_side).ok()?;
        (sha256_hex(&thumbnail) == c.thumbnail_sha256).then(|| ReusedImage { vector: c.vector.clone(), thumbnail })
    }

    fn kept(&self, sha256: &str) -> Option<ReusedImage> {
        let (previous, dir) = self.previous.as_ref()?;
        let (vector, file) = previous.image(sha256)?;
        let thumbnail = catalog_dir::read_thumbnail(dir, file, self.thumbnail_side).ok()?;
        Some(ReusedImage { vector, thumbnail })
    }
}

impl Reuse for Known<'_> {
    fn image(&self, sha256: &str) -> Option<ReusedImage> {
        self.kept(sha256)
    }

    fn checkpointed_image(&self, sha256: &str) -> Option<ReusedImage> {
        self.checkpointed(sha256)
    }

    fn name(&self, name: &str) -> Option<Vec<f32>> {
        let previous = || self.previous.as_ref().and_then(|(p, _)| p.name(name));
        self.checkpoint.names.get(name).cloned().or_else(previous)
    }
}
