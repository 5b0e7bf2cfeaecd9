//! A cache prefetch hint: the one place in the workspace that calls an intrinsic.
//!
//! With thousands of nodes, the first touch of a node's state is a cache miss and dominates the
//! cost of an event. The engine knows which nodes the next few events will touch, so it asks the
//! CPU to start loading them early. A prefetch has no architectural effect: it cannot fault, even
//! on an invalid address, and never changes a value, so it cannot affect determinism.

/// Hints that the `len` bytes at `ptr` will be read soon.
#[inline(always)]
pub fn prefetch_read<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = (value as *const T).cast::<i8>();
        let len = std::mem::size_of::<T>();
        let mut offset = 0;
        while offset < len {
            // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 target has. The prefetch
            // instruction only hints the cache; it does not dereference the pointer in the
            // language's sense, cannot fault, and has no observable effect on program state.
            #[allow(unsafe_code)]
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    start.wrapping_add(offset),
                );
            }
            offset += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
