//! Cross-validation folds over products: all photos of one product fall in the same fold, so a
//! choice made without a fold was never shown that fold's products.

use std::collections::BTreeMap;

use crate::search::synthetic::Rng;

/// Splits photos into at most `k` folds by group (`groups[p]` is photo `p`'s group: its
/// product). Every photo of a group lands in one fold. Groups in `first` (e.g. catalog
/// products, against singleton groups of photos of unknown products) are placed before the
/// others, so that each fold gets one of them while there are at least `k`. Within that order
/// groups are shuffled by `seed` and placed largest first, each into the fold with the fewest
/// photos so far, so folds hold about as many photos each. No fold is empty: there are
/// `min(k, number of groups)` of them. Each fold lists its photos in increasing order.
pub fn grouped_folds(groups: &[usize], first: impl Fn(usize) -> bool, k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (p, &g) in groups.iter().enumerate() {
        members.entry(g).or_default().push(p);
    }
    let mut order: Vec<(usize, Vec<usize>)> = members.into_iter().collect();
    // Fisher-Yates, then a stable sort: the shuffle decides between equals.
    let mut rng = Rng::new(seed);
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order.sort_by_key(|(g, photos)| (!first(*g), std::cmp::Reverse(photos.len())));
    let k = k.min(order.len());
    let mut folds: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (_, photos) in order {
        let smallest = (0..k).min_by_key(|&f| (folds[f].len(), f)).expect("at least one fold");
        folds[smallest].extend(photos);
    }
    folds.iter_mut().for_each(|f| f.sort_unstable());
    folds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_case_by_hand() {
        // Groups 7 (3 photos), 8 (2), 9 (1): two folds, the 3 alone and the 2 + 1 together.
        let folds = grouped_folds(&[7, 8, 7, 9, 8, 7], |_| true, 2, 1);
        let mut sizes: Vec<usize> = folds.iter().map(Vec::len).collect();
        sizes.sort();
        assert_eq!(sizes, [3, 3]);
        assert!(folds.contains(&vec![0, 2, 5]), "{folds:?}");
        // More folds than groups: one fold a group.
        assert_eq!(grouped_folds(&[4, 4], |_| true, 5, 0), vec![vec![0, 1]]);
        assert!(grouped_folds(&[], |_| true, 5, 0).is_empty());
    }
}
