//! Photos to unit embeddings for an evaluation, once each: read, decoded and preprocessed a
//! batch at a time on all threads, then embedded by the vision tower in one call a batch. A
//! photo that cannot be read or decoded is skipped and reported; the caller supplies the bytes.

use rayon::prelude::*;

use crate::error::Error;
use crate::imaging::decode::decode_rgb;
use crate::models::embedder::Embedder;
use crate::search::catalog_builder::SkipReason;

/// What the caller hears while photos are embedded.
pub trait EmbedEvents {
    /// `done` of `total` photos are finished (skips included; reported at 0 first).
    fn progress(&mut self, _done: usize, _total: usize) {}
    /// Photo `index` is left out, for `reason`.
    fn skipped(&mut self, _index: usize, _reason: &SkipReason) {}
}

/// Unit image embeddings of `total` photos (`read(i)` gives photo `i`'s bytes, from several
/// threads), `batch_size` a model call: `Ok(vector)` for each photo embedded, `Err(reason)`
/// for each skipped. Fails only when the model does.
pub fn embed_photos<R, V>(
    embedder: &Embedder,
    total: usize,
    read: R,
    batch_size: usize,
    events: &mut V,
) -> Result<Vec<Result<Vec<f32>, SkipReason>>, Error>
where
    R: Fn(usize) -> Result<Vec<u8>, String> + Sync,
    V: EmbedEvents,
{
    let mut out: Vec<Result<Vec<f32>, SkipReason>> = Vec::with_capacity(total);
    events.progress(0, total);
    for start in (0..total).step_by(batch_size.max(1)) {
        let end = (start + batch_size.max(1)).min(total);
        let prepared: Vec<Result<Vec<f32>, SkipReason>> = (start..end)
            .into_par_iter()
            .map(|i| {
                let bytes = read(i).map_err(SkipReason::Unreadable)?;
                let rgb = decode_rgb(&bytes, &embedder.limits).map_err(SkipReason::Image)?;
                Ok(embedder.pixel_values_of(&rgb))
            })
            .collect();
        let mut pixels = Vec::with_capacity(prepared.len());
        let skips: Vec<Option<SkipReason>> = prepared
            .into_iter()
            .map(|r| r.map(|px| pixels.push(px)).err())
            .collect();
        let mut vectors = embedder.embed_pixels(&pixels)?.into_iter();
        for (index, skip) in (start..).zip(skips) {
            out.push(match skip {
                None => Ok(vectors.next().expect("one vector a photo embedded")),
                Some(reason) => {
                    events.skipped(index, &reason);
                    Err(reason)
                }
            });
        }
        events.progress(end, total);
    }
    Ok(out)
}
