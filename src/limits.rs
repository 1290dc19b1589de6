//! Process limits the server depends on.

/// Raises the soft limit on open files to the hard limit, so the server can
/// hold as many connections as the system allows without the operator
/// remembering `ulimit -n`. Returns the soft limit in force afterwards.
pub(crate) fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            log::debug!("open-file limit: {limit}");
            limit
        }
        Err(err) => {
            log::warn!("cannot raise the open-file limit: {err}");
            0
        }
    }
}
