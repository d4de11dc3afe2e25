//! "Not in catalog" queries without photographing other shops' products: remove product k from
//! the catalog and its photos become photos of a product the catalog lacks, whose right answer
//! is "no confident match". Removing an item changes no other item's score, so the best score
//! without it is the best of the others: no model run, no rebuilt catalog.

use crate::search::eval::labels::Truth;
use crate::search::eval::metrics::Outcome;
use crate::search::eval::similarity::{Judged, Similarities};
use crate::search::rank::FusionWeights;

/// The queries a threshold is judged on, for one photo as judged at some weights: a photo of
/// a catalog product counts twice, asked with the whole catalog (right if its product ranks
/// first) and with its product left out (any confident match is then wrong; skipped when the
/// catalog has no other item); a photo of a product the catalog lacks counts once.
pub fn outcomes_of(j: &Judged) -> impl Iterator<Item = Outcome> {
    let asked = Outcome { best: j.best.1, in_catalog: j.truth != Truth::NotInCatalog, correct: j.truth == Truth::Item(j.best.0) };
    let left_out = j.best_without_truth.map(|best| Outcome { best, in_catalog: false, correct: false });
    std::iter::once(asked).chain(left_out)
}

/// [`outcomes_of`] for each of `photos` at weights `w`.
pub fn outcomes(sims: &Similarities, photos: &[usize], w: FusionWeights) -> Vec<Outcome> {
    photos.iter().flat_map(|&p| outcomes_of(&sims.judge(p, w))).collect()
}
