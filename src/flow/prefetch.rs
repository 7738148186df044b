//! Cache prefetch hints: the flow table loads a packet's flow while earlier
//! packets are processed.

/// Hints the CPU to load the cache lines of the `bytes` bytes at `p`.
#[inline(always)]
pub fn lines<T>(p: *const T, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let base = p as *const i8;
        let mut off = 0;
        while off < bytes {
            // SAFETY: a prefetch is only a hint; it never faults, whatever the address.
            unsafe { _mm_prefetch(base.wrapping_add(off), _MM_HINT_T0) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, bytes);
}

/// Starts loading one cache line of data read once and never again (a
/// capture's bytes), with the non-temporal hint: it should not push flows
/// out of the shared cache.
#[inline(always)]
pub fn once<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_NTA};
        // SAFETY: a prefetch is only a hint; it never faults, whatever the address.
        unsafe { _mm_prefetch(p as *const i8, _MM_HINT_NTA) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
