//! Probe (issue 14): how the int8 kernel's operands reach the registers. Today's kernel
//! (`plain`) broadcasts each input's pair with a shuffle and widens the weights with two
//! extends; `splat` loads the pair already broadcast (`v128.load32_splat`) and the weights
//! already widened (`v128.load8x8_s`); `splat16` keeps the weights as i16 in memory.
//! Measured 2026-11-29, Chromium 156, Zen 3: splat 1.12-1.2x plain, splat16 1.0-1.14x (twice the
//! weight bytes). Six or five inputs a block instead of four (12 or 10 accumulators) ran at
//! 0.7-0.8x: V8 spills registers.
//! 2026-12-07, Chromium 156, Zen 4: `scratch16` (each panel widened once into an i16 scratch,
//! which every block then reads) 1.02x `splat` here, where the weights stay in cache; in the
//! crate, where they come from memory, widening in the first block's pass is what gained (see
//! BENCHMARKS.md, issue 14, fifth session). `splat_u2` (two pairs a step) 1.00x.
use core::arch::wasm32::*;
const M: usize = 50; const K: usize = 768; const N: usize = 3072;
static mut W: [i8; N * K] = [0; N * K];          // row-major n x k
static mut Q: [i16; M * K] = [0; M * K];         // row-major m x k, in [-2047, 2047]
static mut PW: [i8; N * K] = [0; N * K];         // panels: [p][k/2][8 cols][2]
static mut PW16: [i16; N * K] = [0; N * K];      // the same, widened
static mut PA: [i16; 52 * K] = [0; 52 * K];        // blocks of 4 rows: [b][k/2][4 rows][2]
static mut OUT: [i32; M * N] = [0; M * N];

#[no_mangle]
pub unsafe extern "C" fn setup(seed: u32) {
    let mut s = seed;
    let mut next = || { s ^= s << 13; s ^= s >> 17; s ^= s << 5; s };
    for w in W.iter_mut() { *w = ((next() % 255) as i32 - 127) as i8; }
    for q in Q.iter_mut() { *q = ((next() % 4095) as i32 - 2047) as i16; }
    for n in 0..N { for k in 0..K {
        let (p, c) = (n / 8, n % 8);
        PW[p * K * 8 + (k / 2) * 16 + c * 2 + k % 2] = W[n * K + k];
        PW16[p * K * 8 + (k / 2) * 16 + c * 2 + k % 2] = W[n * K + k] as i16;
    }}
    for m in 0..M { for k in 0..K {
        let (b, r) = (m / 4, m % 4);
        PA[b * K * 4 + (k / 2) * 8 + r * 2 + k % 2] = Q[m * K + k];
    }}
}

unsafe fn store(row: usize, col: usize, lo: v128, hi: v128) {
    if row < M { let o = OUT.as_mut_ptr().add(row * N + col);
        v128_store(o as *mut v128, lo); v128_store(o.add(4) as *mut v128, hi); }
}

#[no_mangle]
pub unsafe extern "C" fn plain() {
    for p in 0..N / 8 { for b in 0..M.div_ceil(4) {
        let w = PW.as_ptr().add(p * K * 8); let a = PA.as_ptr().add(b * K * 4);
        let z = i32x4_splat(0); let mut lo = [z; 4]; let mut hi = [z; 4];
        for j in 0..K / 2 {
            let wv = v128_load(w.add(j * 16) as *const v128);
            let wl = i16x8_extend_low_i8x16(wv); let wh = i16x8_extend_high_i8x16(wv);
            let av = v128_load(a.add(j * 8) as *const v128);
            macro_rules! row { ($r:literal) => {
                let ar = i32x4_shuffle::<$r, $r, $r, $r>(av, av);
                lo[$r] = i32x4_add(lo[$r], i32x4_dot_i16x8(ar, wl)); hi[$r] = i32x4_add(hi[$r], i32x4_dot_i16x8(ar, wh));
            }; }
            row!(0); row!(1); row!(2); row!(3);
        }
        for r in 0..4 { store(b * 4 + r, p * 8, lo[r], hi[r]); }
    }}
}

#[no_mangle]
pub unsafe extern "C" fn splat() {
    for p in 0..N / 8 { for b in 0..M.div_ceil(4) {
        let w = PW.as_ptr().add(p * K * 8); let a = PA.as_ptr().add(b * K * 4);
        let z = i32x4_splat(0); let mut lo = [z; 4]; let mut hi = [z; 4];
        for j in 0..K / 2 {
            let wl = i16x8_load_extend_i8x8(w.add(j * 16)); let wh = i16x8_load_extend_i8x8(w.add(j * 16 + 8));
            macro_rules! row { ($r:literal) => {
                let ar = v128_load32_splat(a.add(j * 8 + $r * 2) as *const u32);
                lo[$r] = i32x4_add(lo[$r], i32x4_dot_i16x8(ar, wl)); hi[$r] = i32x4_add(hi[$r], i32x4_dot_i16x8(ar, wh));
            }; }
            row!(0); row!(1); row!(2); row!(3);
        }
        for r in 0..4 { store(b * 4 + r, p * 8, lo[r], hi[r]); }
    }}
}

#[no_mangle]
pub unsafe extern "C" fn splat16() {
    for p in 0..N / 8 { for b in 0..M.div_ceil(4) {
        let w = PW16.as_ptr().add(p * K * 8); let a = PA.as_ptr().add(b * K * 4);
        let z = i32x4_splat(0); let mut lo = [z; 4]; let mut hi = [z; 4];
        for j in 0..K / 2 {
            let wl = v128_load(w.add(j * 16) as *const v128); let wh = v128_load(w.add(j * 16 + 8) as *const v128);
            macro_rules! row { ($r:literal) => {
                let ar = v128_load32_splat(a.add(j * 8 + $r * 2) as *const u32);
                lo[$r] = i32x4_add(lo[$r], i32x4_dot_i16x8(ar, wl)); hi[$r] = i32x4_add(hi[$r], i32x4_dot_i16x8(ar, wh));
            }; }
            row!(0); row!(1); row!(2); row!(3);
        }
        for r in 0..4 { store(b * 4 + r, p * 8, lo[r], hi[r]); }
    }}
}











static mut SCR: [i16; K * 8] = [0; K * 8];

/// Probe: each panel widened once into an L1-sized scratch, then every block reads i16 weights.
#[no_mangle]
pub unsafe extern "C" fn scratch16() {
    for p in 0..N / 8 {
        let src = PW.as_ptr().add(p * K * 8);
        let dst = SCR.as_mut_ptr();
        for j in 0..K / 2 {
            v128_store(dst.add(j * 16) as *mut v128, i16x8_load_extend_i8x8(src.add(j * 16)));
            v128_store(dst.add(j * 16 + 8) as *mut v128, i16x8_load_extend_i8x8(src.add(j * 16 + 8)));
        }
        for b in 0..M.div_ceil(4) {
        let w = SCR.as_ptr(); let a = PA.as_ptr().add(b * K * 4);
        let z = i32x4_splat(0); let mut lo = [z; 4]; let mut hi = [z; 4];
        for j in 0..K / 2 {
            let wl = v128_load(w.add(j * 16) as *const v128); let wh = v128_load(w.add(j * 16 + 8) as *const v128);
            macro_rules! row { ($r:literal) => {
                let ar = v128_load32_splat(a.add(j * 8 + $r * 2) as *const u32);
                lo[$r] = i32x4_add(lo[$r], i32x4_dot_i16x8(ar, wl)); hi[$r] = i32x4_add(hi[$r], i32x4_dot_i16x8(ar, wh));
            }; }
            row!(0); row!(1); row!(2); row!(3);
        }
        for r in 0..4 { store(b * 4 + r, p * 8, lo[r], hi[r]); }
    }}
}

/// Probe: `splat` with two pairs a step (two dot products summed before each accumulate).
#[no_mangle]
pub unsafe extern "C" fn splat_u2() {
    for p in 0..N / 8 { for b in 0..M.div_ceil(4) {
        let w = PW.as_ptr().add(p * K * 8); let a = PA.as_ptr().add(b * K * 4);
        let z = i32x4_splat(0); let mut lo = [z; 4]; let mut hi = [z; 4];
        for j in (0..K / 2).step_by(2) {
            let wl = i16x8_load_extend_i8x8(w.add(j * 16)); let wh = i16x8_load_extend_i8x8(w.add(j * 16 + 8));
            let wl2 = i16x8_load_extend_i8x8(w.add(j * 16 + 16)); let wh2 = i16x8_load_extend_i8x8(w.add(j * 16 + 24));
            macro_rules! row { ($r:literal) => {
                let ar = v128_load32_splat(a.add(j * 8 + $r * 2) as *const u32);
                let ar2 = v128_load32_splat(a.add(j * 8 + 8 + $r * 2) as *const u32);
                lo[$r] = i32x4_add(lo[$r], i32x4_add(i32x4_dot_i16x8(ar, wl), i32x4_dot_i16x8(ar2, wl2)));
                hi[$r] = i32x4_add(hi[$r], i32x4_add(i32x4_dot_i16x8(ar, wh), i32x4_dot_i16x8(ar2, wh2)));
            }; }
            row!(0); row!(1); row!(2); row!(3);
        }
        for r in 0..4 { store(b * 4 + r, p * 8, lo[r], hi[r]); }
    }}
}

/// Outputs of the last variant run that differ from the definition.
#[no_mangle]
pub unsafe extern "C" fn mismatches() -> u32 {
    let mut bad = 0;
    for m in 0..M { for n in 0..N {
        let want: i32 = (0..K).map(|k| W[n * K + k] as i32 * Q[m * K + k] as i32).sum();
        if OUT[m * N + n] != want { bad += 1; }
    }} bad
}
