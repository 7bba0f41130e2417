//! The C allocator's arenas. glibc's `malloc` gives threads that allocate at the same time
//! arenas of their own, up to eight per core, and each arena keeps what was freed in it for
//! reuse: a burst of requests decoded and translated on several threads stays resident
//! afterwards, once per arena. [`limit_malloc_arenas`] caps them at the number of threads
//! that can run at once, which is all an arena saves contention for.
#![allow(unsafe_code)] // `mallopt`, an FFI call; the block says why it is sound.

/// Caps glibc's malloc arenas at `arenas` (at least 1). Call it before the runtime starts
/// its threads. Returns whether the allocator took the setting; with another C library
/// it does nothing and returns `false`.
///
/// ```
/// let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
/// let _took_it = xray_bridge::memory::limit_malloc_arenas(cpus);
/// ```
pub fn limit_malloc_arenas(arenas: usize) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let arenas = libc::c_int::try_from(arenas.max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` only sets one of glibc's allocator tunables; `M_ARENA_MAX`
        // takes any positive count and applies to arenas created from then on.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = arenas;
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_arena_cap() {
        assert!(super::limit_malloc_arenas(2));
        assert!(
            super::limit_malloc_arenas(0),
            "0 is raised to 1, which glibc takes"
        );
    }
}
