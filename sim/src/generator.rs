//! The event source's stream: events 1..N drawn from the mix, applied to the
//! reference model in seq order, then sent in shuffled batches.
//!
//! Each batch is a contiguous seq range. Its events are drawn, formatted and
//! applied to the [`Model`] in seq order (the order the server must apply
//! them in), and their expectations handed to an [`ExpectSink`]; only then
//! is the batch shuffled into the output. Nothing is allocated per event:
//! lines are formatted into a scratch buffer reused by every batch.

use super::Seq;
use super::line::{LineEnding, digest, push_u64};
use super::mix::{Kind, Mix};
use super::model::{ClientIndex, Model, User};
use super::rng::{Rng, stream};

/// Lines that are not valid events, mixed into the stream by `--malformed`.
///
/// Each breaks a different rule, and none may parse as an event (a unit test
/// checks that with [`read_event`](super::line::read_event), and the
/// server's tests with the server's own parser), so the server must skip
/// them without any effect on what clients receive.
pub const GARBAGE: &[&[u8]] = &[
    b"garbage",
    b"",
    b"|B",
    b"0|B",
    b"12|X|3|4",
    b"42|F|1",
    b"-5|S|3",
    b"7|P|a|b",
    b"12|S|3|4|5",
    b"99999999999999999999999|B",
    b"5|B|extra",
];

/// What shapes the stream.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Events to number, 1..=total (holes included).
    pub total_events: u64,
    /// Users in the population; ids are drawn from 1..=users.
    pub users: User,
    /// Largest batch; each batch's size is uniform in 1..=max_batch.
    pub max_batch: u32,
    /// Seed of every draw.
    pub seed: u64,
    /// How often each kind is drawn.
    pub mix: Mix,
    /// Terminator of every line.
    pub ending: LineEnding,
    /// Seqs never sent (distinct, drawn at random).
    pub holes: u64,
    /// Garbage lines mixed in.
    pub malformed: u64,
}

impl Default for GeneratorConfig {
    /// The original client's stream: 10 M events, 1,000 users, batches up to
    /// 100, seed 666, the original mix, CRLF.
    fn default() -> Self {
        GeneratorConfig {
            total_events: 10_000_000,
            users: 1000,
            max_batch: 100,
            seed: 666,
            mix: Mix::original(),
            ending: LineEnding::Crlf,
            holes: 0,
            malformed: 0,
        }
    }
}

/// Receives what the model says each verified connection must get.
pub trait ExpectSink {
    /// Connection `client` must receive the line of `seq`, whose exact bytes
    /// have digest `digest`, after everything expected of it so far.
    fn expect(&mut self, client: ClientIndex, seq: Seq, digest: u64);
}

/// A sink that only counts, for measuring the generator alone.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingSink {
    /// Expectations received.
    pub expectations: u64,
}

impl ExpectSink for CountingSink {
    #[inline]
    fn expect(&mut self, _client: ClientIndex, _seq: Seq, _digest: u64) {
        self.expectations += 1;
    }
}

/// One batch as appended to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Lowest seq of the batch's range.
    pub first: Seq,
    /// Highest seq of the batch's range.
    pub last: Seq,
    /// Event lines in it (the range minus its holes).
    pub events: u32,
    /// Garbage lines in it.
    pub malformed: u32,
}

/// Generates the stream batch by batch.
#[derive(Debug)]
pub struct Generator {
    /// What shapes the stream.
    config: GeneratorConfig,
    /// Draws the events.
    events_rng: Rng,
    /// Draws batch sizes and shuffles.
    order_rng: Rng,
    /// Picks garbage lines.
    garbage_rng: Rng,
    /// The next seq to generate.
    next_seq: Seq,
    /// The follower graph and verified connections.
    model: Model,
    /// Hole seqs, ascending.
    holes: Vec<Seq>,
    /// Next hole not yet passed.
    next_hole: usize,
    /// Seqs before which a garbage line goes, ascending, repeats allowed.
    garbage_at: Vec<Seq>,
    /// Next garbage position not yet passed.
    next_garbage: usize,
    /// The current batch's lines in seq order, before shuffling.
    scratch: Vec<u8>,
    /// `start..end` of each line in `scratch`; shuffled, then copied out.
    spans: Vec<(u32, u32)>,
}

impl Generator {
    /// A generator for `config` whose verified connection `i` claims user
    /// `claims[i]`.
    pub fn new(config: &GeneratorConfig, claims: &[User]) -> Generator {
        let config = GeneratorConfig {
            users: config.users.max(1),
            max_batch: config.max_batch.max(1),
            holes: config.holes.min(config.total_events),
            ..config.clone()
        };
        let holes = draw_holes(&config);
        let garbage_at = draw_garbage_positions(&config);
        Generator {
            events_rng: Rng::stream(config.seed, stream::EVENTS),
            order_rng: Rng::stream(config.seed, stream::ORDER),
            garbage_rng: Rng::stream(config.seed, stream::GARBAGE),
            next_seq: 1,
            model: Model::new(claims),
            holes,
            next_hole: 0,
            garbage_at,
            next_garbage: 0,
            scratch: Vec::with_capacity(64 * config.max_batch as usize),
            spans: Vec::with_capacity(config.max_batch as usize + 16),
            config,
        }
    }

    /// Whether every seq has been generated.
    pub fn is_done(&self) -> bool {
        self.next_seq > self.config.total_events
    }

    /// The seq the next batch starts at.
    pub fn next_seq(&self) -> Seq {
        self.next_seq
    }

    /// The holes: seqs that are never sent.
    pub fn holes(&self) -> &[Seq] {
        &self.holes
    }

    /// The reference model, read-only.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Appends the next batch to `out` and tells `sink` what its events make
    /// each verified connection expect. `None` once every seq is generated.
    pub fn next_batch(&mut self, out: &mut Vec<u8>, sink: &mut impl ExpectSink) -> Option<Batch> {
        if self.is_done() {
            return None;
        }
        let size = self.order_rng.between(1, u64::from(self.config.max_batch));
        let first = self.next_seq;
        let last = (first + size - 1).min(self.config.total_events);
        self.next_seq = last + 1;
        self.scratch.clear();
        self.spans.clear();
        let mut batch = Batch {
            first,
            last,
            events: 0,
            malformed: 0,
        };
        for seq in first..=last {
            while self.garbage_at.get(self.next_garbage) == Some(&seq) {
                self.next_garbage += 1;
                self.push_garbage();
                batch.malformed += 1;
            }
            if self.holes.get(self.next_hole) == Some(&seq) {
                self.next_hole += 1;
                continue;
            }
            self.push_event(seq, sink);
            batch.events += 1;
        }
        if self.spans.len() > 1 {
            self.order_rng.shuffle(&mut self.spans);
        }
        let bytes: usize = self.scratch.len();
        out.reserve(bytes);
        for &(start, end) in &self.spans {
            out.extend_from_slice(&self.scratch[start as usize..end as usize]);
        }
        Some(batch)
    }

    /// Draws event `seq`, formats it into the scratch buffer, applies it to
    /// the model and hands its expectations to `sink`.
    #[inline]
    fn push_event(&mut self, seq: Seq, sink: &mut impl ExpectSink) {
        let draw = self.events_rng.next_u64();
        let ids = self.events_rng.next_u64();
        let mut kind = self.config.mix.pick((draw >> 32) as u32);
        let users = u64::from(self.config.users);
        let mut from = (((ids >> 32) * users) >> 32) as User + 1;
        let mut to = (((ids & 0xFFFF_FFFF) * users) >> 32) as User + 1;
        if kind == Kind::Unfollow {
            // Unfollow undoes a live follow, so few edges stay live, as in
            // the original; with none live it becomes a Follow.
            let live = self.model.live_edges() as u64;
            if live == 0 {
                kind = Kind::Follow;
            } else {
                let pick = ((draw & 0xFFFF_FFFF) * live) >> 32;
                (from, to) = self.model.edge(pick as usize);
            }
        }

        let scratch = &mut self.scratch;
        let start = scratch.len();
        push_u64(scratch, seq);
        scratch.push(b'|');
        scratch.push(kind.letter());
        match kind {
            Kind::Broadcast => {}
            Kind::Status => {
                scratch.push(b'|');
                push_u64(scratch, u64::from(from));
            }
            Kind::Follow | Kind::Unfollow | Kind::Private => {
                scratch.push(b'|');
                push_u64(scratch, u64::from(from));
                scratch.push(b'|');
                push_u64(scratch, u64::from(to));
            }
        }
        scratch.extend_from_slice(self.config.ending.bytes());
        let end = scratch.len();
        self.spans.push((start as u32, end as u32));

        let line = &scratch[start..end];
        let mut line_digest = None;
        self.model.apply(kind, from, to, |client| {
            let hash = *line_digest.get_or_insert_with(|| digest(line));
            sink.expect(client, seq, hash);
        });
    }

    /// Formats one garbage line into the scratch buffer.
    fn push_garbage(&mut self) {
        let pick = self.garbage_rng.below(GARBAGE.len() as u64) as usize;
        let start = self.scratch.len();
        self.scratch.extend_from_slice(GARBAGE[pick]);
        self.scratch.extend_from_slice(self.config.ending.bytes());
        self.spans.push((start as u32, self.scratch.len() as u32));
    }
}

/// Draws `config.holes` distinct seqs from 1..=total, ascending.
fn draw_holes(config: &GeneratorConfig) -> Vec<Seq> {
    let total = config.total_events;
    let wanted = config.holes.min(total) as usize;
    let mut rng = Rng::stream(config.seed, stream::HOLES);
    let mut holes = Vec::with_capacity(wanted);
    // Redraw until distinct: cheap while holes are few next to the events,
    // which is the only sensible use (each hole costs the server a timeout).
    while holes.len() < wanted {
        for _ in holes.len()..wanted {
            holes.push(rng.between(1, total));
        }
        holes.sort_unstable();
        holes.dedup();
    }
    holes
}

/// Draws where `config.malformed` garbage lines go: before which seq each
/// is written (repeats allowed), ascending.
fn draw_garbage_positions(config: &GeneratorConfig) -> Vec<Seq> {
    if config.total_events == 0 {
        return Vec::new();
    }
    let mut rng = Rng::stream(config.seed, stream::MALFORMED);
    let mut at: Vec<Seq> = (0..config.malformed)
        .map(|_| rng.between(1, config.total_events))
        .collect();
    at.sort_unstable();
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::read_event;

    /// Splits `bytes` into lines, terminators included.
    fn lines(bytes: &[u8]) -> Vec<&[u8]> {
        bytes.split_inclusive(|&b| b == b'\n').collect()
    }

    fn small(total: u64, max_batch: u32) -> GeneratorConfig {
        GeneratorConfig {
            total_events: total,
            users: 50,
            max_batch,
            ..GeneratorConfig::default()
        }
    }

    #[test]
    fn every_line_parses_and_every_seq_appears_once() {
        let mut generator = Generator::new(&small(5000, 100), &[1, 2, 3]);
        let mut out = Vec::new();
        while generator
            .next_batch(&mut out, &mut CountingSink::default())
            .is_some()
        {}
        let mut seqs = Vec::new();
        for line in lines(&out) {
            assert!(line.ends_with(b"\r\n"));
            let event = read_event(line).expect("a valid event");
            seqs.push(event.seq);
            if event.kind == Kind::Private {
                assert!((1..=50).contains(&event.from) && (1..=50).contains(&event.to));
            }
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=5000).collect::<Vec<_>>());
    }

    #[test]
    fn batches_are_contiguous_shuffled_ranges() {
        let mut generator = Generator::new(&small(3000, 50), &[]);
        let mut next = 1;
        let mut shuffled = 0;
        let mut out = Vec::new();
        while let Some(batch) = generator.next_batch(&mut out, &mut CountingSink::default()) {
            assert_eq!(batch.first, next);
            assert!(batch.last >= batch.first && batch.last - batch.first < 50);
            let seqs: Vec<Seq> = lines(&out)
                .iter()
                .map(|l| read_event(l).expect("valid").seq)
                .collect();
            let mut sorted = seqs.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (batch.first..=batch.last).collect::<Vec<_>>());
            shuffled += usize::from(sorted != seqs);
            next = batch.last + 1;
            out.clear();
        }
        assert_eq!(next, 3001);
        assert!(shuffled > 10, "batches are shuffled within themselves");
    }

    #[test]
    fn batch_size_one_is_in_order_and_lf_works() {
        let config = GeneratorConfig {
            ending: LineEnding::Lf,
            ..small(200, 1)
        };
        let mut generator = Generator::new(&config, &[]);
        let mut out = Vec::new();
        while generator
            .next_batch(&mut out, &mut CountingSink::default())
            .is_some()
        {}
        let seqs: Vec<Seq> = lines(&out)
            .iter()
            .map(|l| {
                assert!(l.ends_with(b"\n") && !l.ends_with(b"\r\n"));
                read_event(l).expect("valid").seq
            })
            .collect();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    }

    #[test]
    fn the_mix_proportions_hold_over_100k_events() {
        let mut generator = Generator::new(&small(100_000, 100), &[]);
        let mut out = Vec::new();
        while generator
            .next_batch(&mut out, &mut CountingSink::default())
            .is_some()
        {}
        let mut counts = [0u32; 5];
        for line in lines(&out) {
            let kind = read_event(line).expect("valid").kind;
            let at = Kind::ALL.iter().position(|&k| k == kind).expect("a kind");
            counts[at] += 1;
        }
        let share = |at: usize| f64::from(counts[at]) / 100_000.0;
        assert!(share(0) < 0.001, "broadcasts {}", share(0));
        // Unfollows that find no live edge turn into follows, so F edges
        // ahead of U by a little.
        assert!((share(1) - 0.15).abs() < 0.01, "follows {}", share(1));
        assert!((share(2) - 0.15).abs() < 0.01, "unfollows {}", share(2));
        assert!((share(3) - 0.15).abs() < 0.01, "privates {}", share(3));
        assert!((share(4) - 0.55).abs() < 0.01, "statuses {}", share(4));
        assert!(counts[1] >= counts[2]);
    }

    #[test]
    fn unfollows_undo_live_follows() {
        let mut generator = Generator::new(&small(20_000, 1), &[]);
        let mut out = Vec::new();
        let mut live = std::collections::HashSet::new();
        while generator
            .next_batch(&mut out, &mut CountingSink::default())
            .is_some()
        {}
        for line in lines(&out) {
            let event = read_event(line).expect("valid");
            match event.kind {
                Kind::Follow => {
                    live.insert((event.from, event.to));
                }
                Kind::Unfollow => {
                    assert!(
                        live.remove(&(event.from, event.to)),
                        "unfollow of a live edge"
                    );
                }
                _ => {}
            }
        }
        assert_eq!(live.len(), generator.model().live_edges());
    }

    #[test]
    fn holes_are_never_sent_and_garbage_never_parses() {
        let config = GeneratorConfig {
            holes: 7,
            malformed: 20,
            ..small(1000, 10)
        };
        let mut generator = Generator::new(&config, &[]);
        let holes = generator.holes().to_vec();
        assert_eq!(holes.len(), 7);
        let mut out = Vec::new();
        while generator
            .next_batch(&mut out, &mut CountingSink::default())
            .is_some()
        {}
        let mut seqs = Vec::new();
        let mut garbage = 0;
        for line in lines(&out) {
            match read_event(line) {
                Some(event) => seqs.push(event.seq),
                None => garbage += 1,
            }
        }
        assert_eq!(garbage, 20);
        seqs.sort_unstable();
        let wanted: Vec<Seq> = (1..=1000).filter(|s| !holes.contains(s)).collect();
        assert_eq!(seqs, wanted);
    }

    #[test]
    fn no_garbage_line_is_a_valid_event() {
        for line in GARBAGE {
            assert_eq!(read_event(line), None, "{}", line.escape_ascii());
        }
    }

    /// Collects expectations, for checking them against the stream.
    #[derive(Default)]
    struct Collect(Vec<(ClientIndex, Seq, u64)>);

    impl ExpectSink for Collect {
        fn expect(&mut self, client: ClientIndex, seq: Seq, digest: u64) {
            self.0.push((client, seq, digest));
        }
    }

    #[test]
    fn expectations_come_in_seq_order_with_the_line_digest() {
        let mut generator = Generator::new(&small(5000, 100), &[1, 2, 3, 4, 5]);
        let mut out = Vec::new();
        let mut sink = Collect::default();
        while generator.next_batch(&mut out, &mut sink).is_some() {}
        assert!(sink.0.len() > 100);
        let by_seq: std::collections::HashMap<Seq, u64> = lines(&out)
            .iter()
            .map(|l| (read_event(l).expect("valid").seq, digest(l)))
            .collect();
        for pair in sink.0.windows(2) {
            assert!(pair[0].1 <= pair[1].1, "expectations in seq order");
        }
        for (_, seq, hash) in &sink.0 {
            assert_eq!(by_seq[seq], *hash);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let run = |seed: u64| {
            let config = GeneratorConfig {
                seed,
                holes: 3,
                malformed: 3,
                ..small(20_000, 100)
            };
            let mut generator = Generator::new(&config, &[1, 2]);
            let mut out = Vec::new();
            let mut sink = CountingSink::default();
            while generator.next_batch(&mut out, &mut sink).is_some() {}
            (digest(&out), sink.expectations)
        };
        assert_eq!(run(666), run(666));
        assert_ne!(run(666).0, run(667).0);
    }
}
