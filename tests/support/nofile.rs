//! The open-file limit of a spawned agent (tests and benchmarks of many files).

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Start `cmd` with RLIMIT_NOFILE set to `nofile` (soft and hard).
pub fn limit_open_files(cmd: &mut Command, nofile: u64) {
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
