//! The Prometheus endpoint on a real server and real sockets: a scrape's
//! values against `Stats`, `promtool check metrics` when it is installed,
//! bad requests, the cap on connections (idle ones make room for a scrape),
//! and a peer that floods after its response.

#[path = "support/common.rs"]
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{PATIENCE, connect_clients, connect_source, start, wait_for};
use follower_maze::Config;
use follower_maze::metrics::endpoint::{DEADLINE, MAX_CONNECTIONS};

/// A server with metrics on a free loopback port.
fn server_with_metrics() -> (follower_maze::BackgroundServer, SocketAddr) {
    let server = start(Config {
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::ephemeral()
    });
    let addr = server.metrics_addr().expect("metrics are on");
    (server, addr)
}

/// Sends `request` on a new connection and reads the whole response.
fn ask(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("the endpoint accepts");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("the endpoint closes");
    String::from_utf8(response).expect("a UTF-8 response")
}

/// The body of `GET path`.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let response = ask(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_string(), body.to_string())
}

/// The value of the sample named exactly `name` (labels included).
fn sample(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{body}"))
        .parse()
        .expect("an integer sample")
}

#[test]
fn a_scrape_reports_what_the_server_counts() {
    let (server, addr) = server_with_metrics();
    let _clients = connect_clients(&server, &[1, 2]);
    let mut source = connect_source(&server);
    source
        .write_all(b"1|B\r\n3|P|1|2\r\n2|F|1|2\r\nnot an event\r\n")
        .unwrap();
    let stats = wait_for(&server, "the events", |s| {
        s.events_routed == 3 && s.malformed == 1 && s.queued_bytes == 0
    });
    let (head, body) = get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    for (name, value) in [
        ("follower_maze_events_in_total", stats.events_in),
        ("follower_maze_events_routed_total", stats.events_routed),
        ("follower_maze_notifications_total", stats.notifications),
        ("follower_maze_out_bytes_total", stats.bytes_out),
        ("follower_maze_malformed_lines_total", stats.malformed),
        ("follower_maze_clients", stats.clients as u64),
        ("follower_maze_follow_edges", stats.follow_edges as u64),
        ("follower_maze_source_connected", 1),
        ("follower_maze_clients_cut_total{reason=\"lag\"}", 0),
    ] {
        assert_eq!(sample(&body, name), value, "{name}");
    }
    assert_eq!(
        stats.notifications, 4,
        "the broadcast twice, the private, the follow"
    );
    if let Some(verdict) = promtool_check(&body) {
        assert!(
            verdict.0,
            "promtool check metrics refused the page:\n{}",
            verdict.1
        );
    }
    // What Prometheus asks for, it gets: the same samples as OpenMetrics.
    let response = ask(
        addr,
        b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n",
    );
    let (head, open) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(open.ends_with("# EOF\n"));
    assert_eq!(
        sample(open, "follower_maze_events_in_total"),
        stats.events_in
    );
    let (head, body) = get(addr, "/healthz");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, "ok\n");
}

/// `promtool check metrics` on `page`: whether it passed and what it said,
/// or `None` (with one line saying so) when promtool is not installed.
fn promtool_check(page: &str) -> Option<(bool, String)> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        if std::env::var("FOLLOWER_MAZE_REQUIRE_PROMTOOL").as_deref() == Ok("1") {
            panic!(
                "promtool not found and FOLLOWER_MAZE_REQUIRE_PROMTOOL=1: install the Debian package prometheus"
            );
        }
        eprintln!(
            "skipping the promtool check: promtool not found (install the Debian package prometheus, or run .ci/run)"
        );
        return None;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    Some((output.status.success(), said))
}

#[test]
fn a_bad_or_oversized_request_gets_a_400_and_a_close() {
    let (_server, addr) = server_with_metrics();
    let garbage = ask(addr, b"\x16\x03\x01 this is not http\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400 Bad Request"), "{garbage}");
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Padding: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 16 * 1024));
    let oversized = ask(addr, &huge);
    assert!(
        oversized.starts_with("HTTP/1.1 400 Bad Request"),
        "{oversized}"
    );
    // The endpoint still answers afterwards.
    assert!(get(addr, "/metrics").0.starts_with("HTTP/1.1 200 OK"));
}

/// How long a scrape may take while the endpoint is under idle connections
/// or a flood: far below [`DEADLINE`], so a scrape that only gets through
/// once a connection holding it up is cut fails rather than passes late.
const PROMPTLY: Duration = Duration::from_secs(2);

/// `GET path` on a new connection whose reads give up after [`PROMPTLY`]:
/// the whole response, or what happened instead, so that a test fails
/// quickly and says why rather than hanging.
fn get_promptly(addr: SocketAddr, path: &str) -> Result<String, String> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).map_err(|err| format!("connect: {err}"))?;
    stream.set_read_timeout(Some(PROMPTLY)).unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .map_err(|err| format!("send: {err}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|err| format!("no answer after {:?}: {err}", started.elapsed()))?;
    if response.is_empty() {
        return Err(format!("closed unanswered after {:?}", started.elapsed()));
    }
    if started.elapsed() > PROMPTLY {
        return Err(format!("answered only after {:?}", started.elapsed()));
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[test]
fn eight_idle_connections_do_not_lock_out_a_scrape() {
    let (_server, addr) = server_with_metrics();
    // Scrapers that connect and say nothing hold every slot...
    let mut idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // ...yet a scrape is answered at once, not after their deadline...
    let response = get_promptly(addr, "/healthz").unwrap_or_else(|err| panic!("{err}"));
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("\r\n\r\nok\n"), "{response}");
    // ...because the oldest idle connection made room for it...
    idle[0].set_read_timeout(Some(PATIENCE)).unwrap();
    let read = idle[0].read(&mut [0u8; 64]);
    assert!(matches!(read, Ok(0)), "the oldest closed: {read:?}");
    // ...and only that one: the newest is still open.
    let newest = idle.last_mut().unwrap();
    newest
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let read = newest.read(&mut [0u8; 64]);
    assert!(
        read.as_ref()
            .is_err_and(|err| matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "the newest left open: {read:?}"
    );
    // More scrapes keep getting through while the rest stay idle.
    for _ in 0..MAX_CONNECTIONS {
        let response = get_promptly(addr, "/metrics").unwrap_or_else(|err| panic!("{err}"));
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    }
}

/// Sets its flag when dropped: stops a flooding thread when its test ends,
/// passed or failed, so the server it floods can shut down.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_peer_that_keeps_sending_after_its_response_does_not_stall_the_endpoint() {
    let (_server, addr) = server_with_metrics();
    let mut flooder = TcpStream::connect(addr).unwrap();
    flooder.set_read_timeout(Some(PATIENCE)).unwrap();
    flooder.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
    let mut response = Vec::new();
    flooder.read_to_end(&mut response).unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200 OK"));
    // Its response read (the endpoint has shut its side), the peer sends
    // without end on the same connection. Declared after the server, the
    // guard stops it before the server is dropped.
    let stop = Arc::new(AtomicBool::new(false));
    let stop_on_exit = StopOnDrop(stop.clone());
    let flood = std::thread::spawn(move || {
        flooder
            .set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let started = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match flooder.write(&chunk) {
                Ok(_) => {}
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(err) => return Some((err.kind(), started.elapsed())),
            }
        }
        None
    });
    std::thread::sleep(Duration::from_millis(100));
    // Another scrape is answered meanwhile...
    let response = get_promptly(addr, "/healthz").unwrap_or_else(|err| panic!("{err}"));
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    // ...and the flooder was closed for flooding, well before its deadline.
    // Over loopback an unbounded drain mostly catches up with one writer,
    // so the scrape alone rarely shows it; this early close is what tells
    // that the drain has a budget.
    let waited = Instant::now();
    while !flood.is_finished() && waited.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(stop_on_exit);
    let closed = flood.join().unwrap();
    let (kind, after) = closed.expect("the endpoint closed the flooding connection");
    assert!(after < PROMPTLY, "closed ({kind:?}) only after {after:?}");
}

#[test]
fn a_scraper_that_sends_nothing_is_cut_after_the_deadline() {
    let (_server, addr) = server_with_metrics();
    let mut silent = TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(DEADLINE + Duration::from_secs(3)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 64];
    let read = silent.read(&mut buffer);
    assert!(
        matches!(read, Ok(0)),
        "closed, not left open: {read:?} after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() >= DEADLINE - Duration::from_millis(100));
}
