//! Process-wide settings of glibc's allocator, applied once at startup (`tune`).
//!
//! glibc starts with a 128 KiB mmap threshold and a 128 KiB trim threshold, and raises both
//! (the trim threshold to twice the mmap threshold) the first time a chunk it had mmapped is
//! freed. Under a steady event stream the heap of a busy thread then shrinks (`madvise`) and
//! grows again (`mprotect`) all the time, and every page it grows into is faulted in and
//! cleared anew. An agent shipping 2,000,000 lines to Kafka made about 9,000 `mprotect` and
//! 260 `madvise` calls and took 120,000–157,000 minor page faults (half a gigabyte of pages
//! cleared: the size of the data read); `clear_page` was 3–4 % of its producing thread and of
//! librdkafka's broker thread (`perf record`, `strace -c -e trace=memory`,
//! `/proc/<pid>/stat`). With the thresholds fixed at 2 MiB (mmap) and 8 MiB (trim) the same
//! run takes about 15,000 faults. 1 MiB / 4 MiB did not help (130,000): librdkafka's produce
//! request buffers are about 1 MiB (`message.max.bytes`), and the heap swings by about 2 MiB.
//!
//! The cost is memory kept: a thread's heap keeps up to 8 MiB free at its top instead of
//! 2 MiB or so, and allocations between 128 KiB and 2 MiB come from a heap instead of their
//! own mapping.
//!
//! A user's own `MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_` or `glibc.malloc`
//! tunables win: nothing is changed then.

/// Allocations at least this big get their own mapping.
pub const MMAP_THRESHOLD: usize = 2 << 20;
/// Free memory at the top of a heap beyond this is given back to the kernel.
pub const TRIM_THRESHOLD: usize = 8 << 20;

/// Apply the thresholds above, unless the environment sets the allocator's own. Returns
/// whether it did.
pub fn tune() -> bool {
    !set_by_user(|k| std::env::var(k).ok()) && apply()
}

/// Whether the environment (`var`) sets either threshold itself.
fn set_by_user(var: impl Fn(&str) -> Option<String>) -> bool {
    let tunables = var("GLIBC_TUNABLES").unwrap_or_default();
    var("MALLOC_TRIM_THRESHOLD_").is_some()
        || var("MALLOC_MMAP_THRESHOLD_").is_some()
        || tunables.contains("glibc.malloc.trim_threshold")
        || tunables.contains("glibc.malloc.mmap_threshold")
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    // SAFETY: mallopt only changes glibc's allocator parameters; the values are in range.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_users_own_thresholds_win() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!super::set_by_user(env(&[])));
        assert!(!super::set_by_user(env(&[(
            "GLIBC_TUNABLES",
            "glibc.malloc.tcache_count=0"
        )])));
        assert!(super::set_by_user(env(&[("MALLOC_TRIM_THRESHOLD_", "0")])));
        assert!(super::set_by_user(env(&[("MALLOC_MMAP_THRESHOLD_", "1")])));
        assert!(super::set_by_user(env(&[(
            "GLIBC_TUNABLES",
            "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=4096"
        )])));
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_thresholds() {
        assert!(super::apply());
    }
}
