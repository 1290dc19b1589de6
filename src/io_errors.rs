//! The two I/O errors every non-blocking loop here tells apart from real
//! failures: the engine's reads and writes, the mio shell's accepts and
//! polls, and the metrics endpoint all ask the same two questions.

use std::io;

/// True for the error that means "no more right now".
pub(crate) fn would_block(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

/// True for the error that means "a signal interrupted the call; retry".
pub(crate) fn interrupted(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Interrupted
}
