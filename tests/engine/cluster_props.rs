//! The cluster's promise as a property: over random streams (shuffled
//! batches, holes, duplicates, malformed lines, pauses longer than the hole
//! timeout, a source that reconnects and carries on or starts a new run),
//! every client of an edge receives exactly the bytes the same client of a
//! standalone engine receives.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use crate::cluster::{Step, standalone_and_clustered};

/// One generated event: its kind (0..5), two users, and its fate: 0 never
/// sent (a hole), 1 sent twice, 2 preceded by a malformed line, else sent.
type Spec = (u8, u64, u64, u8);

/// The line of event `seq` per `spec`, LF or CRLF by its parity.
fn line(seq: u64, (kind, a, b, _): Spec) -> Vec<u8> {
    let end = if seq.is_multiple_of(2) { "\r\n" } else { "\n" };
    match kind {
        0 => format!("{seq}|F|{a}|{b}{end}"),
        1 => format!("{seq}|U|{a}|{b}{end}"),
        2 => format!("{seq}|B{end}"),
        3 => format!("{seq}|P|{a}|{b}{end}"),
        _ => format!("{seq}|S|{a}{end}"),
    }
    .into_bytes()
}

/// The bytes a source sends for `specs`, seqs from 1, each block of
/// `block` lines reversed (out of order within it).
fn stream(specs: &[Spec], block: usize) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for (index, &spec) in specs.iter().enumerate() {
        let seq = index as u64 + 1;
        let mut bytes = Vec::new();
        match spec.3 {
            0 => {}
            1 => bytes = [line(seq, spec), line(seq, spec)].concat(),
            2 => bytes = [b"not|an|event\n".to_vec(), line(seq, spec)].concat(),
            _ => bytes = line(seq, spec),
        }
        lines.push(bytes);
    }
    lines
        .chunks(block)
        .flat_map(|chunk| chunk.iter().rev().flatten().copied().collect::<Vec<u8>>())
        .collect()
}

/// `bytes` cut into sends of the sizes in `cuts` (cycled), each followed by
/// its pause.
fn steps(bytes: &[u8], cuts: &[(usize, u64)]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut rest = bytes;
    for &(size, pause) in cuts.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(size.min(rest.len()));
        steps.push(Step::Send(now.to_vec(), pause));
        rest = later;
    }
    steps
}

fn spec() -> impl Strategy<Value = Spec> {
    (0u8..5, 1u64..7, 1u64..7, 0u8..20)
}

proptest! {
    // Failures are kept where the crate's own (`src/`) property tests keep
    // theirs: under `proptest-regressions/`, by source path. (The default
    // would put them next to `tests/engine/main.rs`, a second layout.)
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/tests/engine/cluster_props.txt"
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn an_edge_client_receives_what_a_standalone_client_would(
        first_run in prop::collection::vec(spec(), 1..120),
        second_run in prop::collection::vec(spec(), 0..60),
        starts_over in any::<bool>(),
        block in 1usize..16,
        cuts in prop::collection::vec((1usize..700, prop_oneof![Just(0u64), 0u64..50, 900u64..1300]), 1..6),
    ) {
        let ids = [1, 2, 3, 3, 4];
        let mut plan = steps(&stream(&first_run, block), &cuts);
        if !second_run.is_empty() {
            // A new source: starting over at seq 1 (a new run), or carrying
            // on from where the first run's seqs end.
            plan.push(Step::Reconnect(0));
            let bytes = if starts_over {
                stream(&second_run, block)
            } else {
                let all: Vec<Spec> = first_run.iter().chain(&second_run).copied().collect();
                let whole = stream(&all, 1);
                let first_len = stream(&first_run, 1).len();
                whole[first_len..].to_vec()
            };
            plan.extend(steps(&bytes, &cuts));
        }
        let (alone, clustered) = standalone_and_clustered(&ids, &plan);
        prop_assert_eq!(clustered, alone);
    }
}
