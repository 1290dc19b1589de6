//! Slow is not stuck, against the real binary: readers slower than the
//! source are slowed down to, never cut, while a client that does not read
//! is cut at the write deadline, and the process's memory stays within its
//! budget. The rules themselves (the write deadline, the lag bound, the
//! output limit counting only a client's own frames, holding the source)
//! are the core's, tested in memory in `tests/engine/limits.rs`.

#[path = "support/common.rs"]
mod common;
#[path = "support/binary.rs"]
mod support_binary;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use support_binary::{Binary, wait_for_line};

/// `{seq}|B\n` for every seq in `1..=count`, back to back.
fn broadcasts(count: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(count as usize * 10);
    for seq in 1..=count {
        writeln!(out, "{seq}|B").unwrap();
    }
    out
}

/// Reads `expected.len()` bytes from `stream` at no more than
/// `bytes_per_second`, in reads of up to 64 KiB, and panics unless they are
/// exactly `expected`. Compares as it goes, so nothing is stored.
fn read_throttled(mut stream: TcpStream, expected: &[u8], bytes_per_second: f64) {
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("a read timeout");
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0;
    while offset < expected.len() {
        let want = buf.len().min(expected.len() - offset);
        let n = stream
            .read(&mut buf[..want])
            .unwrap_or_else(|e| panic!("read failed at byte {offset}: {e}"));
        assert!(n > 0, "cut after {offset} of {} bytes", expected.len());
        assert!(
            buf[..n] == expected[offset..offset + n],
            "wrong bytes at {offset}"
        );
        offset += n;
        let due = Duration::from_secs_f64(offset as f64 / bytes_per_second);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}

/// A client with a small receive buffer that sends `id` and never reads.
fn never_reading(addr: std::net::SocketAddr, id: u64) -> TcpStream {
    let mut stream = connect_with_recv_buffer(addr, 4096);
    writeln!(stream, "{id}").expect("the id is sent");
    stream
}

/// Twenty readers, each throttled to a steady rate far below what the
/// source sends, and one client that never reads; four million broadcasts
/// as fast as the source can write them. Run against the real binary, so
/// its peak memory can be read.
#[test]
fn readers_slower_than_the_source_get_everything_and_only_the_stuck_client_is_cut() {
    let _heavy = heavy();
    const READERS: u64 = 20;
    const BROADCASTS: u64 = 4_000_000;
    const BUDGET: u64 = 32 << 20;
    let write_deadline = Duration::from_secs(1);
    let args = [
        "--event-port".to_string(),
        "0".into(),
        "--client-port".into(),
        "0".into(),
        "--max-queued-bytes".into(),
        BUDGET.to_string(),
        "--write-deadline-ms".into(),
        write_deadline.as_millis().to_string(),
        "--stats-interval-ms".into(),
        "50".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let binary = Binary::start(&args, &[], None);
    let idle_rss_kb = binary.status_kb("VmRSS");
    let mut source = TcpStream::connect(binary.event_addr).expect("the source connects");
    // Receive buffers of 256 KiB (the kernel would otherwise grow them to
    // megabytes and hide how far each reader is behind), so what a reader
    // owes sits in the server.
    let readers: Vec<TcpStream> = (1..=READERS)
        .map(|id| {
            let mut stream = connect_with_recv_buffer(binary.client_addr, 256 * 1024);
            writeln!(stream, "{id}").expect("the id is sent");
            stream
        })
        .collect();
    let _stuck = never_reading(binary.client_addr, READERS + 1);
    wait_for_line(&binary.log, "clients 21 (+0 awaiting id)");

    let stream = Arc::new(broadcasts(BROADCASTS));
    // About 39 MB each: at 8 MB/s a reader needs about 5 s, while the
    // source could send it all in well under a second.
    let rate = 8e6;
    let reading: Vec<_> = readers
        .into_iter()
        .map(|reader| {
            let expected = Arc::clone(&stream);
            std::thread::spawn(move || read_throttled(reader, &expected, rate))
        })
        .collect();
    let sent = Arc::clone(&stream);
    let started = Instant::now();
    let writer = std::thread::spawn(move || source.write_all(&sent));

    let cut_line = wait_for_line(&binary.log, "slow consumer (write deadline)");
    let cut_after = started.elapsed();
    for thread in reading {
        thread
            .join()
            .expect("every reader got every broadcast in order");
    }
    writer
        .join()
        .expect("the writer finished")
        .expect("the source was never cut off");
    assert!(cut_line.contains("user 21"), "{cut_line}");
    // Never before its deadline. How soon after it is the core's timer
    // rule, tested with a fake clock (tests/engine/limits.rs): here, on a
    // busy machine, the server's thread may be descheduled for seconds, so
    // a wall-clock upper bound would test the machine, not the server.
    assert!(
        cut_after >= write_deadline,
        "the stuck client was cut {cut_after:?} after the flood began (deadline {write_deadline:?})"
    );

    let peak_kb = binary.status_kb("VmHWM");
    let allowed_kb = idle_rss_kb + BUDGET / 1024 + 8 * 1024;
    eprintln!("peak RSS {peak_kb} kB; idle {idle_rss_kb} kB; allowed {allowed_kb} kB");
    assert!(
        peak_kb <= allowed_kb,
        "peak RSS {peak_kb} kB, idle {idle_rss_kb} kB + budget {} kB + 8 MiB",
        BUDGET / 1024
    );
    // The last stats line counts one cut, for the write deadline, and no
    // other: the readers were never cut.
    let counts = "cut 1 (write deadline 1, output limit 0, lag 0)";
    let mut last_stats = String::new();
    while let Ok(line) = binary.log.recv_timeout(Duration::from_millis(300)) {
        if line.contains("events in") {
            last_stats = line;
        }
    }
    assert!(last_stats.contains(counts), "{last_stats}");
}
