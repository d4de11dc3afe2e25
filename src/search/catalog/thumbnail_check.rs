//! What a catalog's thumbnail must be when it is read: a JPEG of at most the catalog's thumbnail
//! size a side, told from its header alone (nothing is decoded), so that no reader carries or
//! shows a picture larger than the thumbnails `build` writes.

use imagesize::ImageType;

use super::format::{Manifest, MAX_THUMBNAIL_SIDE};
use crate::error::CatalogError;

impl Manifest {
    /// The longest side its thumbnails may have: the size `sources` records (when it does), at
    /// most [`MAX_THUMBNAIL_SIDE`].
    pub fn thumbnail_side(&self) -> u32 {
        self.sources.as_ref().map_or(MAX_THUMBNAIL_SIDE, |s| s.thumbnail_side.min(MAX_THUMBNAIL_SIDE))
    }
}

/// Refuses `bytes` unless its header says it is a JPEG of at most `max_side` pixels a side.
pub fn check_thumbnail(bytes: &[u8], max_side: u32) -> Result<(), CatalogError> {
    let found = match imagesize::image_type(bytes) {
        Ok(ImageType::Jpeg) => match imagesize::blob_size(bytes) {
            Ok(s) if s.width <= max_side as usize && s.height <= max_side as usize => return Ok(()),
            Ok(s) => format!("a {}x{} JPEG", s.width, s.height),
            Err(_) => "a JPEG whose header gives no size".into(),
        },
        Ok(other) => format!("a {} image, not a JPEG", format!("{other:?}").to_uppercase()),
        Err(_) => "not an image".into(),
    };
    Err(CatalogError::Thumbnail { found, max_side })
}
