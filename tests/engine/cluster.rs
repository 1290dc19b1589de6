//! The core in a cluster: an ingest turns the source into records for the
//! shared log, an edge routes those records to its clients, and a client of
//! an edge gets exactly what a standalone server would have sent it.

use std::time::Instant;

use follower_maze::engine::Engine;
use follower_maze::engine::batcher::{BATCH_LINES, BATCH_QUIET, Batcher};
use follower_maze::engine::memory::{Harness, MemoryNet, Peer};
use follower_maze::engine::records::Record;
use follower_maze::engine::{Port, protocol::Seq};

use crate::support::{config, ms, private_messages, shuffled, with_clients};

/// An ingest on an in-memory network carrying on run `run` from `next`,
/// with at most `max_outstanding` records not yet stored, and its source.
fn ingest(run: u64, next: Seq, max_outstanding: usize) -> (Harness, Peer) {
    let now = Instant::now();
    let batcher = Batcher::new(run, max_outstanding);
    let mut harness = Harness {
        engine: Engine::new_ingest(config(), now, batcher, next),
        net: MemoryNet::default(),
        now,
    };
    let source = harness.connect(Port::Events);
    harness.settle();
    (harness, source)
}

/// Every record the ingest has closed, each confirmed stored at once.
fn drain_records(harness: &mut Harness) -> Vec<Record> {
    let records: Vec<Record> = std::iter::from_fn(|| harness.engine.take_record()).collect();
    harness.engine.records_stored(records.len(), harness.now);
    records
}

/// The event lines of `records`, back to back.
fn lines_of(records: &[Record]) -> Vec<u8> {
    records
        .iter()
        .flat_map(|record| match record {
            Record::Events { lines, .. } => lines.clone(),
            Record::NewRun { .. } => Vec::new(),
        })
        .collect()
}

/// An edge (an engine fed records instead of a source) with one client per
/// id in `ids`.
fn edge(ids: &[u64]) -> (Harness, Vec<Peer>) {
    let mut harness = Harness::new(config());
    let clients = ids
        .iter()
        .map(|id| harness.client(&id.to_string()))
        .collect();
    harness.settle();
    (harness, clients)
}

#[test]
fn the_ingest_appends_the_source_in_sequence_order_in_exact_bytes() {
    let (mut harness, source) = ingest(0, 1, 64);
    let stream: Vec<u8> = shuffled(1..=300)
        .into_iter()
        .flat_map(|seq| format!("{seq}|P|1|7\n").into_bytes())
        .collect();
    source.send(&stream);
    harness.settle();
    harness.run_for(ms(2), ms(1));
    let records = drain_records(&mut harness);
    assert_eq!(
        records[0],
        Record::NewRun { run: 1 },
        "an empty log's run 1"
    );
    assert_eq!(lines_of(&records), private_messages(1, 300, 7));
    let Record::Events {
        first_seq,
        last_seq,
        ..
    } = &records[1]
    else {
        panic!("events follow the run's start: {records:?}");
    };
    assert_eq!((*first_seq, *last_seq), (1, 300));
}

#[test]
fn a_batch_closes_by_size_at_once_and_by_quiet_after_a_millisecond() {
    let (mut harness, source) = ingest(2, 1, 64);
    let count = BATCH_LINES as Seq + 5;
    let stream: Vec<u8> = (1..=count)
        .flat_map(|seq| format!("{seq}|B\n").into_bytes())
        .collect();
    source.send(&stream);
    harness.settle();
    let full = drain_records(&mut harness);
    assert_eq!(full.len(), 1, "only the full batch is closed: {full:?}");
    harness.run_for(ms(1), ms(1));
    let rest = drain_records(&mut harness);
    let Some(Record::Events {
        run,
        first_seq,
        last_seq,
        ..
    }) = rest.first()
    else {
        panic!("the quiet batch closed: {rest:?}");
    };
    assert_eq!((*run, *first_seq, *last_seq), (2, count - 4, count));
}

#[test]
fn the_ingest_stops_reading_its_source_while_the_log_lags() {
    let (mut harness, source) = ingest(1, 1, 4);
    let stream: Vec<u8> = (1..=20 * BATCH_LINES as Seq)
        .flat_map(|seq| format!("{seq}|B\n").into_bytes())
        .collect();
    source.send(&stream);
    harness.run_for(ms(5), ms(1));
    let stats = harness.engine.stats();
    assert!(stats.source_pauses >= 1, "paused: {stats:?}");
    let mut records = Vec::new();
    while let Some(record) = harness.engine.take_record() {
        records.push(record);
    }
    assert_eq!(records.len(), 4, "no more than the bound is outstanding");
    // The log catches up step by step: everything arrives, in order.
    let mut unstored = records.len();
    for _ in 0..100 {
        harness.engine.records_stored(unstored, harness.now);
        harness.run_for(ms(2), ms(1));
        let more: Vec<Record> = std::iter::from_fn(|| harness.engine.take_record()).collect();
        if more.is_empty() {
            break;
        }
        unstored = more.len();
        records.extend(more);
    }
    assert_eq!(lines_of(&records), stream);
}

#[test]
fn a_run_boundary_past_the_bound_waits_for_room_and_loses_nothing() {
    let (mut harness, first) = ingest(0, 1, 4);
    // The first source's run, seq 1 last, so it is all read before any is
    // released: run 1's start, two full batches and an open one (3 of 4).
    let old_run: Vec<u8> = (2..=2500)
        .chain([1])
        .flat_map(|seq| format!("{seq}|B\n").into_bytes())
        .collect();
    first.send(&old_run);
    first.close_sending();
    // A second source, waiting behind it, starts over in the same turn:
    // the open batch closes and run 2 begins, two records past the bound.
    let second = harness.connect(Port::Events);
    second.send(b"1|S|7\n");
    harness.settle();
    let mut records: Vec<Record> = std::iter::from_fn(|| harness.engine.take_record()).collect();
    assert_eq!(records.len(), 4, "only the bound is handed out");
    harness.engine.records_stored(4, harness.now);
    harness.run_for(ms(2), ms(1));
    records.extend(std::iter::from_fn(|| harness.engine.take_record()));
    let expected_old: Vec<u8> = (1..=2500)
        .flat_map(|seq| format!("{seq}|B\n").into_bytes())
        .collect();
    assert_eq!(records.len(), 6);
    assert_eq!(records[0], Record::NewRun { run: 1 });
    assert_eq!(lines_of(&records[..4]), expected_old);
    assert_eq!(records[4], Record::NewRun { run: 2 });
    assert_eq!(lines_of(&records[5..]), b"1|S|7\n");
}

#[test]
fn a_resumed_ingest_carries_the_run_on_and_a_source_starting_over_begins_the_next() {
    let (mut harness, source) = ingest(3, 101, 64);
    source.send(b"102|B\n101|B\n");
    harness.run_for(ms(200), ms(1));
    let carried = drain_records(&mut harness);
    assert_eq!(
        carried,
        vec![Record::Events {
            run: 3,
            first_seq: 101,
            last_seq: 102,
            lines: b"101|B\n102|B\n".to_vec()
        }]
    );
    source.close_sending();
    harness.settle();
    let next = harness.connect(Port::Events);
    harness.settle();
    next.send(b"2|B\n1|B\n");
    harness.run_for(ms(200), ms(1));
    let started = drain_records(&mut harness);
    assert_eq!(started[0], Record::NewRun { run: 4 });
    assert_eq!(lines_of(&started), b"1|B\n2|B\n");
}

#[test]
fn an_edge_routes_records_with_run_boundaries_resetting_the_graph() {
    let (mut harness, clients) = edge(&[1, 2]);
    let engine = &mut harness.engine;
    engine.push_record(Record::NewRun { run: 1 });
    engine.push_record(Record::Events {
        run: 1,
        first_seq: 1,
        last_seq: 3,
        lines: b"1|F|2|1\n3|S|1\n".to_vec(),
    });
    engine.push_record(Record::NewRun { run: 2 });
    engine.push_record(Record::Events {
        run: 2,
        first_seq: 1,
        last_seq: 1,
        lines: b"1|S|1\n".to_vec(),
    });
    harness.settle();
    assert_eq!(clients[0].take_received(), b"1|F|2|1\n");
    assert_eq!(
        clients[1].take_received(),
        b"3|S|1\n",
        "the follow of run 1 is gone in run 2"
    );
    assert_eq!(harness.engine.records_waiting(), 0);
    assert_eq!(harness.engine.stats().runs, 1, "started over once");
}

/// One step of a source's life: bytes it sends, or it closes and a new
/// source connects; then the clock moves on `pause_ms` milliseconds.
#[derive(Debug, Clone)]
pub enum Step {
    /// The source sends these bytes.
    Send(Vec<u8>, u64),
    /// The source closes; a new one connects.
    Reconnect(u64),
}

/// Plays `steps` through a standalone engine with clients `ids`, and
/// through an ingest whose records feed an edge with the same clients;
/// returns what each client received in each.
pub fn standalone_and_clustered(ids: &[u64], steps: &[Step]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut alone, mut alone_source, alone_clients) = with_clients(config(), ids);
    let (mut edge, edge_clients) = edge(ids);
    let (mut ingest, mut ingest_source) = ingest(0, 1, 64);
    // Each step: the standalone engine and the ingest move on; what the
    // ingest appended reaches the edge, which then moves on too, so the
    // edge is never a step behind when the run ends.
    let mut advance = |ms: u64, alone: &mut Harness, ingest: &mut Harness| {
        for _ in 0..ms.div_ceil(10) {
            for harness in [&mut *alone, &mut *ingest] {
                harness.advance(ms_step());
                harness.settle();
            }
            for record in drain_records(ingest) {
                edge.engine.push_record(record);
            }
            edge.advance(ms_step());
            edge.settle();
        }
    };
    for step in steps {
        let pause = match step {
            Step::Send(bytes, pause) => {
                alone_source.send(bytes);
                ingest_source.send(bytes);
                *pause
            }
            Step::Reconnect(pause) => {
                alone_source.close_sending();
                ingest_source.close_sending();
                alone.settle();
                ingest.settle();
                alone_source = alone.connect(Port::Events);
                ingest_source = ingest.connect(Port::Events);
                *pause
            }
        };
        alone.settle();
        ingest.settle();
        advance(pause, &mut alone, &mut ingest);
    }
    // Long enough for every hole to be skipped and every batch stored.
    advance(1500, &mut alone, &mut ingest);
    // A batch the ingest filled in the last step closes after its quiet
    // time (steps are 10 ms apart, so no hole's deadline falls inside it);
    // then the edge routes it.
    ingest.advance(BATCH_QUIET);
    ingest.settle();
    for record in drain_records(&mut ingest) {
        edge.engine.push_record(record);
    }
    edge.settle();
    let received = |clients: &[Peer]| clients.iter().map(Peer::take_received).collect();
    (received(&alone_clients), received(&edge_clients))
}

/// The clock step of [`standalone_and_clustered`].
fn ms_step() -> std::time::Duration {
    ms(10)
}

#[test]
fn an_edge_client_receives_exactly_what_a_standalone_client_would() {
    // Follows, unfollows, statuses, privates and broadcasts, out of order,
    // with a hole (seq 40 never comes) that both skip after the timeout.
    let ids = [1, 2, 3, 4];
    let mut lines = Vec::new();
    for seq in 1..=120u64 {
        let (a, b) = (seq % 5, (seq * 7) % 5);
        let line = match seq % 6 {
            _ if seq == 40 => continue,
            0 => format!("{seq}|F|{a}|{b}\n"),
            1 => format!("{seq}|S|{b}\n"),
            2 => format!("{seq}|P|{a}|{b}\r\n"),
            3 => format!("{seq}|U|{b}|{a}\n"),
            4 => format!("{seq}|B\n"),
            _ => format!("{seq}|F|{b}|{a}\n"),
        };
        lines.push(line.into_bytes());
    }
    let order = shuffled(0..=lines.len() as u64 - 1);
    let stream: Vec<u8> = order
        .iter()
        .flat_map(|&i| lines[i as usize].clone())
        .collect();
    let steps: Vec<Step> = stream
        .chunks(4096)
        .map(|chunk| Step::Send(chunk.to_vec(), 1))
        .collect();
    let (alone, clustered) = standalone_and_clustered(&ids, &steps);
    assert!(alone.iter().all(|bytes| !bytes.is_empty()));
    assert_eq!(clustered, alone);
}
