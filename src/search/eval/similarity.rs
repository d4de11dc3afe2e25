//! Every labelled photo's cosine similarity with every catalog item's name and image vector,
//! computed once from the photo's embedding: every figure of an evaluation (any weights, any
//! fold, any product left out) is a weighted sum of these, so the model runs once per photo.

use crate::error::EvalError;
use crate::kernels::math::dot_in_order;
use crate::search::catalog::Catalog;
use crate::search::eval::labels::Truth;
use crate::search::rank::FusionWeights;

/// One labelled photo against the whole catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoSimilarities {
    pub truth: Truth,
    /// cos(photo, item name) for every item, in catalog order.
    pub text: Vec<f32>,
    /// cos(photo, item image) for every item, in catalog order.
    pub image: Vec<f32>,
}

/// The similarities of a set of labelled photos to a catalog of `items` products.
#[derive(Debug, Clone)]
pub struct Similarities {
    items: usize,
    photos: Vec<PhotoSimilarities>,
}

/// How one photo fares at some weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    pub truth: Truth,
    /// The item ranked first and its fused score.
    pub best: (usize, f32),
    /// For a photo of a catalog item: that item's place (1 = first; ties go to the item earlier
    /// in the catalog, as `rank` orders them) and its score.
    pub truth_rank: Option<(usize, f32)>,
    /// For a photo of a catalog item: the best score of the other items, i.e. the best score
    /// once its product is left out of the catalog (`None` when the catalog has no other item).
    pub best_without_truth: Option<f32>,
}

impl Similarities {
    /// The similarities of unit photo embeddings (`(truth, vector)`) to `catalog`'s stored
    /// vectors (de-quantised: the exact scores `query` reports).
    pub fn new(catalog: &Catalog, photos: Vec<(Truth, Vec<f32>)>) -> Result<Self, EvalError> {
        let n = catalog.len();
        let names: Vec<Vec<f32>> = (0..n).map(|i| catalog.name_vector(i).into_owned()).collect();
        let images: Vec<Vec<f32>> = (0..n).map(|i| catalog.image_vector(i).into_owned()).collect();
        let photos = photos
            .into_iter()
            .map(|(truth, q)| {
                if q.len() != catalog.dim() {
                    return Err(EvalError::Dimension { photo: q.len(), catalog: catalog.dim() });
                }
                if let Truth::Item(i) = truth {
                    if i >= n {
                        return Err(EvalError::NoSuchItem { index: i, items: n });
                    }
                }
                let text = names.iter().map(|v| dot_in_order(&q, v)).collect();
                let image = images.iter().map(|v| dot_in_order(&q, v)).collect();
                Ok(PhotoSimilarities { truth, text, image })
            })
            .collect::<Result<_, _>>()?;
        Ok(Similarities { items: n, photos })
    }

    pub fn items(&self) -> usize {
        self.items
    }

    pub fn len(&self) -> usize {
        self.photos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.photos.is_empty()
    }

    pub fn truth(&self, photo: usize) -> Truth {
        self.photos[photo].truth
    }

    pub fn photo(&self, photo: usize) -> &PhotoSimilarities {
        &self.photos[photo]
    }

    /// Photos of catalog items (not those of products the catalog lacks).
    pub fn in_catalog(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(|&p| self.truth(p) != Truth::NotInCatalog)
    }

    /// The fused score of every item for `photo`, as `rank` computes it.
    pub fn scores(&self, photo: usize, w: FusionWeights) -> impl Iterator<Item = f32> + '_ {
        let p = &self.photos[photo];
        p.text.iter().zip(&p.image).map(move |(t, m)| w.text * t + w.image * m)
    }

    /// Where `photo` stands at weights `w`: its best item, and for a photo of a catalog item
    /// that item's place and the best score without it.
    pub fn judge(&self, photo: usize, w: FusionWeights) -> Judged {
        let truth = self.truth(photo);
        let t = truth.item();
        let truth_score = t.map(|t| {
            let p = &self.photos[photo];
            w.text * p.text[t] + w.image * p.image[t]
        });
        let mut best = (0, f32::NEG_INFINITY);
        let mut other = None::<f32>;
        let mut above = 0;
        for (i, s) in self.scores(photo, w).enumerate() {
            // Strictly greater replaces: the earlier item wins a tie, as in `rank`.
            if s.total_cmp(&best.1).is_gt() {
                best = (i, s);
            }
            if Some(i) != t {
                other = Some(other.map_or(s, |o| o.max(s)));
                if let Some(ts) = truth_score {
                    let ahead = s.total_cmp(&ts);
                    above += usize::from(ahead.is_gt() || (ahead.is_eq() && Some(i) < t));
                }
            }
        }
        Judged {
            truth,
            best,
            truth_rank: t.zip(truth_score).map(|(_, s)| (above + 1, s)),
            best_without_truth: t.and(other),
        }
    }
}
