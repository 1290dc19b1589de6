//! The engine's log lines, captured per test thread: the engine runs on
//! the test's own thread in memory, so a test sees its own lines only.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    /// The lines logged on this thread while it captures.
    static LINES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Keeps each line as `LEVEL message` for the thread that logged it, if
/// that thread captures; drops it otherwise.
struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        LINES.with(|lines| {
            if let Some(lines) = lines.borrow_mut().as_mut() {
                lines.push(format!("{} {}", record.level(), record.args()));
            }
        });
    }

    fn flush(&self) {}
}

/// Runs `f`, returning what it returns and the lines it logged.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_boxed_logger(Box::new(Capture)).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Debug);
    });
    LINES.with(|lines| *lines.borrow_mut() = Some(Vec::new()));
    let result = f();
    let lines = LINES
        .with(|lines| lines.borrow_mut().take())
        .unwrap_or_default();
    (result, lines)
}

/// The one line in `lines` that contains every one of `needles`; panics,
/// showing the lines, unless there is exactly one.
#[track_caller]
pub fn the_line<'a>(lines: &'a [String], needles: &[&str]) -> &'a str {
    let found: Vec<&String> = lines
        .iter()
        .filter(|line| needles.iter().all(|needle| line.contains(needle)))
        .collect();
    match found[..] {
        [line] => line,
        _ => panic!(
            "{} lines with {needles:?}, not one; the log:\n{}",
            found.len(),
            lines.join("\n")
        ),
    }
}
