//! What the CPU can do, asked once per question: the one place the workspace detects
//! instruction sets before dispatching to a SIMD kernel.
//!
//! The standard library caches the answer after the first call, so asking on every kernel call
//! costs a load and a branch. On a target other than x86-64 both answers are `false` and the
//! portable kernels run.
//!
//! ```
//! let fast = dendrite_graph::cpu::has_avx2_fma();
//! assert!(!fast || dendrite_graph::cpu::has_avx2());
//! ```

/// Whether the CPU has AVX2.
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU has AVX2 and FMA, the features the `f32` matrix, optimizer and conversion
/// kernels are compiled for.
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU (and the operating system, which must save the wider registers) supports
/// AVX-512 Foundation, which the `f32` matrix kernel uses when it is there.
pub fn has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
