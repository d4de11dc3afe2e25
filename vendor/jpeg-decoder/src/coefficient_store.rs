// clipmatch patch (PATCHES.md, 1): the whole file.
//! A progressive frame's coefficients for one component, kept until its last scan. At full
//! scale every block keeps its 64 coefficients. At a reduced scale (`dct_scale` n < 8: an IDCT
//! of n x n outputs per block, which reads only the top-left n x n coefficients) a block keeps
//! those n x n and one bit for each of its 64 coefficients saying whether it is non-zero, which
//! is all that a refinement scan reads of the others. A 48-megapixel 4:2:0 photo at 1/4 keeps
//! 16 bytes a block instead of 128: 18 MB instead of 144 MB.

use alloc::vec;
use alloc::vec::Vec;

pub(crate) struct CoefficientStore {
    /// n: the kept coefficients are rows and columns 0..n of each block.
    side: usize,
    /// n x n coefficients a block, row by row.
    kept: Vec<i16>,
    /// Bit k of a block's word: its coefficient k (natural order) is non-zero (n < 8 only).
    nonzero: Vec<u64>,
}

impl CoefficientStore {
    pub(crate) fn new(blocks: usize, dct_scale: usize) -> CoefficientStore {
        let side = dct_scale.clamp(1, 8);
        CoefficientStore {
            side,
            kept: vec![0; blocks * side * side],
            nonzero: if side == 8 { Vec::new() } else { vec![0; blocks] },
        }
    }

    /// Block `block`'s coefficients as decoding reads them: those not kept are 1 where they are
    /// non-zero (any value but 0 decodes the same: refinement adds to it away from zero).
    pub(crate) fn load(&self, block: usize, out: &mut [i16; 64]) {
        let n = self.side;
        let kept = &self.kept[block * n * n..(block + 1) * n * n];
        if n == 8 {
            out.copy_from_slice(kept);
            return;
        }
        let bits = self.nonzero[block];
        for (k, c) in out.iter_mut().enumerate() {
            *c = ((bits >> k) & 1) as i16;
        }
        for row in 0..n {
            out[row * 8..row * 8 + n].copy_from_slice(&kept[row * n..(row + 1) * n]);
        }
    }

    /// Keeps block `block`'s coefficients after a scan changed them.
    pub(crate) fn store(&mut self, block: usize, coefficients: &[i16; 64]) {
        let n = self.side;
        let kept = &mut self.kept[block * n * n..(block + 1) * n * n];
        if n == 8 {
            kept.copy_from_slice(coefficients);
            return;
        }
        for row in 0..n {
            kept[row * n..(row + 1) * n].copy_from_slice(&coefficients[row * 8..row * 8 + n]);
        }
        self.nonzero[block] = coefficients.iter().enumerate().fold(0, |bits, (k, &c)| bits | ((c != 0) as u64) << k);
    }

    /// Blocks `first..first + count` as the IDCT reads them, 64 coefficients each (zero where
    /// not kept: the scaled IDCT does not read them).
    pub(crate) fn blocks(&self, first: usize, count: usize) -> Vec<i16> {
        let n = self.side;
        if n == 8 {
            return self.kept[first * 64..(first + count) * 64].to_vec();
        }
        let mut out = vec![0i16; count * 64];
        for (b, block) in out.chunks_exact_mut(64).enumerate() {
            let kept = &self.kept[(first + b) * n * n..(first + b + 1) * n * n];
            for row in 0..n {
                block[row * 8..row * 8 + n].copy_from_slice(&kept[row * n..(row + 1) * n]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reduced_store_keeps_the_top_left_and_which_others_are_non_zero() {
        let mut store = CoefficientStore::new(3, 2);
        let mut block = [0i16; 64];
        block[0] = -40;
        block[1] = 7;
        block[8] = 3;
        block[2] = -5; // not kept: only that it is non-zero
        block[63] = 9;
        store.store(1, &block);
        let mut back = [0i16; 64];
        store.load(1, &mut back);
        assert_eq!((back[0], back[1], back[8], back[9]), (-40, 7, 3, 0));
        assert_eq!((back[2], back[63], back[3]), (1, 1, 0));
        let row = store.blocks(1, 2);
        assert_eq!((row[0], row[1], row[8], row[2], row[63]), (-40, 7, 3, 0, 0));
        assert!(row[64..].iter().all(|&c| c == 0));
        let mut full = CoefficientStore::new(1, 8);
        full.store(0, &block);
        full.load(0, &mut back);
        assert_eq!(back, block);
    }
}
