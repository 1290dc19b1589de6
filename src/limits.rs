//! Process limits the server depends on.

/// Raises the soft limit on open files to the hard limit, so the server can
/// hold as many connections as the system allows without the operator
/// remembering `ulimit -n`. Returns the soft limit in force afterwards.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        log::warn!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        );
        return 0;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit read-only for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            log::debug!(
                "open-file limit raised from {} to {}",
                limit.rlim_cur,
                limit.rlim_max
            );
            return raised.rlim_cur;
        }
        log::warn!(
            "cannot raise the open-file limit from {}: {}",
            limit.rlim_cur,
            std::io::Error::last_os_error()
        );
    }
    limit.rlim_cur
}
