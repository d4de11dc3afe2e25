//! The few SIMD operations the matrix kernels need, behind one trait so a kernel is written once
//! and compiled for each instruction set: WebAssembly SIMD128 (the browser build), AVX2 + FMA
//! (x86-64, chosen at run time), and a portable fallback that LLVM vectorises for any target.

/// A token proving that an instruction set is available; its methods are `unsafe` only because
/// they read and write raw pointers.
pub trait F32Simd: Copy {
    /// f32 lanes in one vector.
    const LANES: usize;
    type V: Copy;
    fn zero(self) -> Self::V;
    fn splat(self, x: f32) -> Self::V;
    /// # Safety
    /// `p` must point at `LANES` readable f32s.
    unsafe fn load(self, p: *const f32) -> Self::V;
    /// # Safety
    /// `p` must point at `LANES` writable f32s.
    unsafe fn store(self, p: *mut f32, v: Self::V);
    /// `a * b + c`
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
}

/// Eight f32s as a plain array: LLVM turns the loops into whatever vectors the target has.
#[derive(Clone, Copy)]
pub struct Portable;

impl F32Simd for Portable {
    const LANES: usize = 8;
    type V = [f32; 8];
    #[inline(always)]
    fn zero(self) -> Self::V {
        [0.0; 8]
    }
    #[inline(always)]
    fn splat(self, x: f32) -> Self::V {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> Self::V {
        core::ptr::read_unaligned(p as *const [f32; 8])
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: Self::V) {
        core::ptr::write_unaligned(p as *mut [f32; 8], v)
    }
    #[inline(always)]
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        let mut r = c;
        for i in 0..8 {
            r[i] += a[i] * b[i];
        }
        r
    }
    #[inline(always)]
    fn add(self, a: Self::V, b: Self::V) -> Self::V {
        let mut r = a;
        for i in 0..8 {
            r[i] += b[i];
        }
        r
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::Avx2;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::F32Simd;
    use core::arch::x86_64::*;

    /// AVX2 + FMA: only constructed after run-time detection.
    #[derive(Clone, Copy)]
    pub struct Avx2(());

    impl Avx2 {
        pub fn detect() -> Option<Self> {
            (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Avx2(()))
        }
    }

    // SAFETY (all methods): an `Avx2` exists only where AVX2 and FMA were detected.
    impl F32Simd for Avx2 {
        const LANES: usize = 8;
        type V = __m256;
        #[inline(always)]
        fn zero(self) -> Self::V {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        fn splat(self, x: f32) -> Self::V {
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(self, p: *const f32) -> Self::V {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: Self::V) {
            _mm256_storeu_ps(p, v)
        }
        #[inline(always)]
        fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn add(self, a: Self::V, b: Self::V) -> Self::V {
            unsafe { _mm256_add_ps(a, b) }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use wasm::Simd128;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use super::F32Simd;
    use core::arch::wasm32::*;

    /// WebAssembly SIMD128, enabled at compile time (`.cargo/config.toml`). With the
    /// `relaxed-simd` target feature, multiply-add is fused where the CPU can.
    #[derive(Clone, Copy)]
    pub struct Simd128;

    impl F32Simd for Simd128 {
        const LANES: usize = 4;
        type V = v128;
        #[inline(always)]
        fn zero(self) -> Self::V {
            f32x4_splat(0.0)
        }
        #[inline(always)]
        fn splat(self, x: f32) -> Self::V {
            f32x4_splat(x)
        }
        #[inline(always)]
        unsafe fn load(self, p: *const f32) -> Self::V {
            v128_load(p as *const v128)
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: Self::V) {
            v128_store(p as *mut v128, v)
        }
        #[inline(always)]
        fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            #[cfg(target_feature = "relaxed-simd")]
            {
                f32x4_relaxed_madd(a, b, c)
            }
            #[cfg(not(target_feature = "relaxed-simd"))]
            {
                f32x4_add(f32x4_mul(a, b), c)
            }
        }
        #[inline(always)]
        fn add(self, a: Self::V, b: Self::V) -> Self::V {
            f32x4_add(a, b)
        }
    }
}
