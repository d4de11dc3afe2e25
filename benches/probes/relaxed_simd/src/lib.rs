//! Probe: 12-bit x 8-bit integer GEMM, SIMD128 i32x4.dot_i16x8 vs relaxed dot_i8x16_i7x16_add (hi/lo 6-bit halves).
use core::arch::wasm32::*;
const M: usize = 52; const K: usize = 768; const N: usize = 3072;
static mut W: [i8; N * K] = [0; N * K];          // row-major n x k
static mut Q: [i16; M * K] = [0; M * K];         // row-major m x k, in [-2047, 2047]
static mut PW: [i8; N * K] = [0; N * K];         // plain panels: [p][k/2][8 cols][2]
static mut PA: [i16; M * K] = [0; M * K];        // plain blocks: [b][k/2][4 rows][2]
static mut RW: [i8; N * K] = [0; N * K];         // relaxed panels: [p][k/4][2 halves][4 cols][4 k]
static mut RA: [u8; 2 * M * K] = [0; 2 * M * K]; // relaxed blocks: [b][k/4][hi|lo][4 rows][4 k]
static mut WSUM: [i32; N] = [0; N];
static mut OUT: [i32; M * N] = [0; M * N];
static mut OUT2: [i32; M * N] = [0; M * N];

#[no_mangle]
pub unsafe extern "C" fn setup(seed: u32) {
    let mut s = seed;
    let mut next = || { s ^= s << 13; s ^= s >> 17; s ^= s << 5; s };
    for w in W.iter_mut() { *w = ((next() % 255) as i32 - 127) as i8; }
    for q in Q.iter_mut() { *q = ((next() % 4095) as i32 - 2047) as i16; }
    for n in 0..N { WSUM[n] = (0..K).map(|k| W[n * K + k] as i32).sum(); }
    for n in 0..N { for k in 0..K {
        let (p, c) = (n / 8, n % 8);
        PW[p * K * 8 + (k / 2) * 16 + c * 2 + k % 2] = W[n * K + k];
        RW[p * K * 8 + (k / 4) * 32 + (c / 4) * 16 + (c % 4) * 4 + k % 4] = W[n * K + k];
    }}
    for m in 0..M { for k in 0..K {
        let (b, r) = (m / 4, m % 4);
        PA[b * K * 4 + (k / 2) * 8 + r * 2 + k % 2] = Q[m * K + k];
        let u = (Q[m * K + k] as i32 + 2048) as u32;
        let base = b * K * 8 + (k / 4) * 32 + r * 4 + k % 4;
        RA[base] = (u >> 6) as u8; RA[base + 16] = (u & 63) as u8;
    }}
}

#[no_mangle]
pub unsafe extern "C" fn plain() {
    for p in 0..N / 8 { for b in 0..M / 4 {
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
        for r in 0..4 { let o = OUT.as_mut_ptr().add((b * 4 + r) * N + p * 8);
            v128_store(o as *mut v128, lo[r]); v128_store(o.add(4) as *mut v128, hi[r]); }
    }}
}

#[no_mangle]
pub unsafe extern "C" fn relaxed() {
    for p in 0..N / 8 { for b in 0..M / 4 {
        let w = RW.as_ptr().add(p * K * 8); let a = RA.as_ptr().add(b * K * 8);
        let z = i32x4_splat(0);
        let (mut h0, mut h1, mut l0, mut l1) = ([z; 4], [z; 4], [z; 4], [z; 4]);
        for j in 0..K / 4 {
            let w0 = v128_load(w.add(j * 32) as *const v128); let w1 = v128_load(w.add(j * 32 + 16) as *const v128);
            let ah = v128_load(a.add(j * 32) as *const v128); let al = v128_load(a.add(j * 32 + 16) as *const v128);
            macro_rules! row { ($r:literal) => {
                let rh = i32x4_shuffle::<$r, $r, $r, $r>(ah, ah); let rl = i32x4_shuffle::<$r, $r, $r, $r>(al, al);
                h0[$r] = i32x4_relaxed_dot_i8x16_i7x16_add(w0, rh, h0[$r]); h1[$r] = i32x4_relaxed_dot_i8x16_i7x16_add(w1, rh, h1[$r]);
                l0[$r] = i32x4_relaxed_dot_i8x16_i7x16_add(w0, rl, l0[$r]); l1[$r] = i32x4_relaxed_dot_i8x16_i7x16_add(w1, rl, l1[$r]);
            }; }
            row!(0); row!(1); row!(2); row!(3);
        }
        let s = WSUM.as_ptr().add(p * 8);
        let (s0, s1) = (i32x4_mul(v128_load(s as *const v128), i32x4_splat(2048)), i32x4_mul(v128_load(s.add(4) as *const v128), i32x4_splat(2048)));
        for r in 0..4 { let o = OUT2.as_mut_ptr().add((b * 4 + r) * N + p * 8);
            let v0 = i32x4_sub(i32x4_add(i32x4_shl(h0[r], 6), l0[r]), s0);
            let v1 = i32x4_sub(i32x4_add(i32x4_shl(h1[r], 6), l1[r]), s1);
            v128_store(o as *mut v128, v0); v128_store(o.add(4) as *mut v128, v1); }
    }}
}

#[no_mangle]
pub unsafe extern "C" fn mismatches() -> u32 {
    let mut bad = 0; for i in 0..M * N { if OUT[i] != OUT2[i] { bad += 1; } } bad
}
#[no_mangle]
pub unsafe extern "C" fn reference_mismatches() -> u32 {
    let mut bad = 0;
    for m in 0..M { for n in 0..N {
        let want: i32 = (0..K).map(|k| W[n * K + k] as i32 * Q[m * K + k] as i32).sum();
        if OUT[m * N + n] != want { bad += 1; }
    }} bad
}
