//! A fixed product to time the pool's threads on: the page runs it on 1, 2, ... threads at load
//! and keeps the fewest that are about as fast as the most ([`crate::parallel::set_thread_limit`]),
//! since a browser may report more cores than the device has.

use std::sync::OnceLock;

use super::gemm::PackedLinear;

/// Rows, and inputs (= outputs) of the layer: a ViT-B/32 layer's projection of its 50 tokens,
/// the kind of product that makes most of an image tower's time.
const ROWS: usize = 50;
const WIDTH: usize = 768;

/// Products per run, chained: about 180 M multiply-adds, about 9 ms on one thread of this
/// machine's Chromium, long enough that waking the helpers (once a run, as once a forward pass)
/// does not decide the count.
const PRODUCTS: usize = 6;

/// The layer and its input: fixed values, made once.
struct Probe {
    layer: PackedLinear,
    input: Vec<f32>,
}

/// Fixed values in [-1, 1), of both signs.
fn spread(i: usize) -> f32 {
    ((i * 7919 % 1000) as f32 - 500.0) / 500.0
}

/// The layer's weight `i` (row-major): scaled so that a product keeps its input's size (a
/// uniform weight's variance times the width is 1), so that the chained products neither vanish
/// nor blow up.
fn weight_value(i: usize) -> f32 {
    spread(i + 1) * (3.0 / WIDTH as f32).sqrt()
}

fn probe() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(|| {
        let weight: Vec<f32> = (0..WIDTH * WIDTH).map(weight_value).collect();
        Probe { layer: PackedLinear::new(&weight, WIDTH, WIDTH, None), input: (0..ROWS * WIDTH).map(spread).collect() }
    })
}

/// Runs the products in one team ([`crate::parallel::with_team`]), as a forward pass runs its
/// steps; returns an output value (so that the work is not left out).
pub fn run() -> f32 {
    let probe = probe();
    let mut x = probe.input.clone();
    let mut y = vec![0.0f32; ROWS * WIDTH];
    crate::parallel::with_team(|| {
        for _ in 0..PRODUCTS {
            probe.layer.forward(&x, ROWS, &mut y);
            std::mem::swap(&mut x, &mut y);
        }
    });
    x[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe's output is the chained product's, computed plainly.
    #[test]
    fn the_probe_computes_its_chained_product() {
        let mut x: Vec<f32> = (0..ROWS * WIDTH).map(spread).collect();
        for _ in 0..PRODUCTS {
            x = (0..ROWS * WIDTH)
                .map(|o| (0..WIDTH).map(|k| x[o / WIDTH * WIDTH + k] * weight_value(o % WIDTH * WIDTH + k)).sum())
                .collect();
        }
        let size = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let got = run();
        assert!(size > 1e-3 && size < 1e3, "the values neither vanish nor blow up: {size}");
        assert!((got - x[0]).abs() <= 1e-4 * size, "probe {got}, plain {}", x[0]);
    }
}
