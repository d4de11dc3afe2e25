//! Times the ranking of a synthetic catalog natively: random unit vectors, stored as i8 and
//! as f32, the same code the page runs in its worker.
//!
//!   cargo run --release --example rank_bench -- [items (100000)] [dim (512)] [runs (30)]

use std::time::Instant;

use clipmatch::search::catalog::{vectors_file_size, RankingDefaults, VectorDtype};
use clipmatch::search::rank::rank;
use clipmatch::search::ranking_options::RankingOverrides;
use clipmatch::search::synthetic::{self, Rng};

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn main() {
    let arg = |i: usize, default: usize| std::env::args().nth(i).map_or(default, |a| a.parse().expect("a number"));
    let (items, dim, runs) = (arg(1, 100_000), arg(2, 512), arg(3, 30));
    // The default ranking settings a built catalog gets (top 5).
    let o = RankingOverrides::default().resolve(&RankingDefaults::default());
    for dtype in [VectorDtype::I8, VectorDtype::F32] {
        let t = Instant::now();
        let catalog = synthetic::catalog(items, dim, 1, dtype).expect("synthetic catalog");
        let built = t.elapsed().as_secs_f64();
        let mut times = Vec::with_capacity(runs);
        for run in 0..runs + 3 {
            let query = Rng::new(1000 + run as u64).unit_vector(dim);
            let t = Instant::now();
            let r = rank(&catalog, &query, o.weights, o.top_k, o.min_score);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(r.matches.len(), o.top_k.min(items));
            if run >= 3 {
                times.push(ms); // the first 3 are a warm-up
            }
        }
        let (min, max) = (times.iter().copied().fold(f64::MAX, f64::min), times.iter().copied().fold(0.0, f64::max));
        println!(
            "{:>3}: {items} items x 2 x {dim} dims ({:.1} MB of vectors, built in {built:.1} s): rank top {} median {:.2} ms over {runs} runs (min {min:.2}, max {max:.2})",
            dtype.name(),
            vectors_file_size(items, dim, dtype).expect("fits in memory") as f64 / 1e6,
            o.top_k,
            median(&mut times)
        );
    }
}
