//! Streaming, exact verification of what each verified connection receives.
//!
//! The model pushes `(seq, digest of the exact line)` for every notification
//! a connection is owed, in seq order; each received line pops the front.
//! Memory is the expectations in flight, not the run: the generator stops
//! generating while too many are pending (see [`Verifiers::pending`]).
//!
//! A line whose seq is not at the front is classified on the spot when it
//! can be: a seq at or below the last one received is a reorder, a
//! duplicate or an unexpected line; a seq never owed is unexpected. A seq
//! owed further back means the ones before it were skipped: they are kept
//! as *missing candidates*, because one may still arrive (a reorder), and
//! only at the end of the run does a candidate become [`Missing`].
//!
//! In *count-only* mode ([`Verifiers::counting`], `--count-only`) nothing is
//! queued: each connection counts the lines it is owed and the lines it
//! gets, and fails only on more lines than owed. That costs the reading side
//! little more than the loopback baseline's byte counting, so a throughput
//! run measures the server rather than the verifier.
//!
//! [`Missing`]: FailureReason::Missing

use std::collections::VecDeque;

use super::failure::{FailureReason, show_line};
use super::generator::ExpectSink;
use super::line::{digest, leading_seq};
use super::model::ClientIndex;
use super::{Seq, UserId};

/// Missing candidates kept per connection; past this only the count grows
/// (the first divergence is already known by then).
const MAX_CANDIDATES: usize = 64;

/// One verified connection's expectations and what it has received.
#[derive(Debug)]
pub struct ClientVerifier {
    /// The user the connection claimed.
    user: UserId,
    /// The connection's index, to tell duplicate ids apart in messages.
    client: ClientIndex,
    /// Owed and not yet received: `(seq, digest)`, ascending seq.
    pending: VecDeque<(Seq, u64)>,
    /// Expectations pushed so far.
    expected: u64,
    /// Lines received so far.
    received: u64,
    /// Bytes of the lines received.
    bytes: u64,
    /// Highest seq received (0 before the first).
    last_seq: Seq,
    /// Owed seqs passed over by a later one: `(missing, received instead)`.
    candidates: Vec<(Seq, Seq)>,
    /// Count lines instead of checking them: `pending` stays empty.
    count_only: bool,
}

impl ClientVerifier {
    /// A connection of `user` with index `client`, owed nothing yet.
    pub fn new(user: UserId, client: ClientIndex) -> Self {
        ClientVerifier {
            user,
            client,
            pending: VecDeque::new(),
            expected: 0,
            received: 0,
            bytes: 0,
            last_seq: 0,
            candidates: Vec::new(),
            count_only: false,
        }
    }

    /// Like [`ClientVerifier::new`], but only counting lines.
    pub fn counting(user: UserId, client: ClientIndex) -> Self {
        ClientVerifier {
            count_only: true,
            ..ClientVerifier::new(user, client)
        }
    }

    /// The user this connection claimed.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// Owed notifications not yet received.
    pub fn pending(&self) -> usize {
        if self.count_only {
            self.expected.saturating_sub(self.received) as usize
        } else {
            self.pending.len()
        }
    }

    /// The lowest seq owed and not yet received. Counting only, the seq is
    /// not kept: the one after the last received stands in for it (a lower
    /// bound, enough for the timeout check).
    pub fn front(&self) -> Option<Seq> {
        if self.count_only {
            return (self.pending() > 0).then_some(self.last_seq + 1);
        }
        self.pending.front().map(|&(seq, _)| seq)
    }

    /// Lines received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The connection is owed the line of `seq`, with digest `hash`.
    #[inline]
    pub fn expect(&mut self, seq: Seq, hash: u64) {
        if !self.count_only {
            self.pending.push_back((seq, hash));
        }
        self.expected += 1;
    }

    /// Checks one received line (terminator included) against the front of
    /// what is owed.
    #[inline]
    pub fn on_line(&mut self, line: &[u8]) -> Result<(), FailureReason> {
        self.received += 1;
        self.bytes += line.len() as u64;
        if self.count_only {
            return self.count(line);
        }
        let Some(seq) = leading_seq(line) else {
            return Err(self.garbled(line));
        };
        if seq <= self.last_seq {
            return Err(self.behind(seq));
        }
        // The common case: exactly the next one owed.
        let at = match self.pending.front() {
            Some(&(front, _)) if front == seq => 0,
            _ => match self.pending.binary_search_by_key(&seq, |&(s, _)| s) {
                Ok(at) => at,
                Err(_) => {
                    return Err(FailureReason::Unexpected {
                        user: self.user,
                        client: self.client,
                        seq,
                    });
                }
            },
        };
        for (missing, _) in self.pending.drain(..at) {
            if self.candidates.len() < MAX_CANDIDATES {
                self.candidates.push((missing, seq));
            }
        }
        let (_, hash) = self
            .pending
            .pop_front()
            .expect("the search found it in pending");
        self.last_seq = seq;
        if hash != digest(line) {
            return Err(FailureReason::Altered {
                user: self.user,
                client: self.client,
                seq,
                line: show_line(line),
            });
        }
        Ok(())
    }

    /// Counting only: `lines` more lines arrived in `bytes` bytes. Fine
    /// unless that makes more than owed (the seq is not looked at: 0).
    pub fn on_counted(&mut self, lines: u64, bytes: u64) -> Result<(), FailureReason> {
        self.received += lines;
        self.bytes += bytes;
        if self.received <= self.expected {
            return Ok(());
        }
        Err(FailureReason::Unexpected {
            user: self.user,
            client: self.client,
            seq: 0,
        })
    }

    /// Counting only: a line is fine unless it is one more than owed.
    fn count(&mut self, line: &[u8]) -> Result<(), FailureReason> {
        if self.received <= self.expected {
            return Ok(());
        }
        Err(FailureReason::Unexpected {
            user: self.user,
            client: self.client,
            seq: leading_seq(line).unwrap_or(0),
        })
    }

    /// Classifies a seq at or below the last one received.
    fn behind(&mut self, seq: Seq) -> FailureReason {
        let (user, client) = (self.user, self.client);
        if let Some(at) = self.candidates.iter().position(|&(s, _)| s == seq) {
            self.candidates.remove(at);
            return FailureReason::Reordered {
                user,
                client,
                seq,
                after: self.last_seq,
            };
        }
        if seq == self.last_seq {
            return FailureReason::Duplicate { user, client, seq };
        }
        FailureReason::Unexpected { user, client, seq }
    }

    /// A line that holds no notification.
    pub fn garbled(&self, line: &[u8]) -> FailureReason {
        FailureReason::Garbled {
            user: self.user,
            client: self.client,
            line: show_line(line),
        }
    }

    /// The first seq owed and never received: a missing candidate, else the
    /// front of what is pending.
    pub fn first_missing(&self) -> Option<Seq> {
        self.candidates
            .first()
            .map(|&(seq, _)| seq)
            .or_else(|| self.front())
    }

    /// The verdict once the run is over and nothing is pending: a
    /// [`FailureReason::Missing`] for the first seq that was passed over and
    /// never came.
    pub fn missing(&self) -> Option<FailureReason> {
        let &(seq, received_instead) = self.candidates.first()?;
        Some(FailureReason::Missing {
            user: self.user,
            client: self.client,
            seq,
            received_instead,
            expected: self.expected,
            received: self.received,
        })
    }

    /// The reason for having waited `waited_ms` for what is owed.
    pub fn timed_out(&self, waited_ms: u64) -> FailureReason {
        FailureReason::Timeout {
            user: self.user,
            client: self.client,
            expected: self.expected,
            received: self.received,
            first_missing: self.first_missing().unwrap_or(0),
            waited_ms,
        }
    }

    /// The reason for the server having closed this connection.
    pub fn disconnected(&self) -> FailureReason {
        FailureReason::Disconnected {
            user: self.user,
            client: self.client,
            expected: self.expected,
            received: self.received,
            first_missing: self.first_missing(),
        }
    }
}

/// Every verified connection, with totals over all of them.
#[derive(Debug, Default)]
pub struct Verifiers {
    /// Indexed by [`ClientIndex`].
    clients: Vec<ClientVerifier>,
    /// Expectations pending over all connections, to bound memory.
    pending: usize,
    /// Lines verified over all connections.
    verified: u64,
    /// Bytes of the lines verified.
    verified_bytes: u64,
}

impl Verifiers {
    /// One verifier per verified connection; connection `i` claims
    /// `users[i]`.
    pub fn new(users: &[UserId]) -> Self {
        Verifiers::made_by(users, ClientVerifier::new)
    }

    /// Like [`Verifiers::new`], but only counting lines (see the module
    /// docs).
    pub fn counting(users: &[UserId]) -> Self {
        Verifiers::made_by(users, ClientVerifier::counting)
    }

    /// One verifier per connection, `make(users[i], i)` for connection `i`.
    fn made_by(users: &[UserId], make: fn(UserId, ClientIndex) -> ClientVerifier) -> Self {
        Verifiers {
            clients: users
                .iter()
                .enumerate()
                .map(|(at, &user)| make(user, at as ClientIndex))
                .collect(),
            ..Verifiers::default()
        }
    }

    /// Expectations pending over all connections.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Lines that matched their expectation, over all connections.
    pub fn verified(&self) -> u64 {
        self.verified
    }

    /// Bytes of those lines.
    pub fn verified_bytes(&self) -> u64 {
        self.verified_bytes
    }

    /// Verified connections.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there are no verified connections.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Connection `client`'s verifier.
    pub fn get(&self, client: ClientIndex) -> &ClientVerifier {
        &self.clients[client as usize]
    }

    /// Every verifier, in connection order.
    pub fn iter(&self) -> impl Iterator<Item = &ClientVerifier> {
        self.clients.iter()
    }

    /// Counting only: `client` received `bytes` bytes holding `lines` line
    /// ends, counted in bulk rather than line by line.
    pub fn on_counted(
        &mut self,
        client: ClientIndex,
        lines: u64,
        bytes: u64,
    ) -> Result<(), FailureReason> {
        let verifier = &mut self.clients[client as usize];
        let before = verifier.pending();
        let result = verifier.on_counted(lines, bytes);
        self.pending -= before - verifier.pending();
        if result.is_ok() {
            self.verified += lines;
            self.verified_bytes += bytes;
        }
        result
    }

    /// Checks a line received by `client`, keeping the totals right.
    #[inline]
    pub fn on_line(&mut self, client: ClientIndex, line: &[u8]) -> Result<(), FailureReason> {
        let verifier = &mut self.clients[client as usize];
        let before = verifier.pending();
        let result = verifier.on_line(line);
        self.pending -= before - verifier.pending();
        if result.is_ok() {
            self.verified += 1;
            self.verified_bytes += line.len() as u64;
        }
        result
    }
}

impl ExpectSink for Verifiers {
    #[inline]
    fn expect(&mut self, client: ClientIndex, seq: Seq, hash: u64) {
        self.clients[client as usize].expect(seq, hash);
        self.pending += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verifier for user 7 owed the given lines.
    fn owed(lines: &[&[u8]]) -> ClientVerifier {
        let mut verifier = ClientVerifier::new(7, 0);
        for line in lines {
            verifier.expect(leading_seq(line).expect("seq"), digest(line));
        }
        verifier
    }

    /// `all` with each `(client, line)` owed: `line` expected by `client`.
    fn owing(mut all: Verifiers, owed: &[(ClientIndex, &[u8])]) -> Verifiers {
        for &(client, line) in owed {
            all.expect(client, leading_seq(line).expect("seq"), digest(line));
        }
        all
    }

    const A: &[u8] = b"3|P|1|7\r\n";
    const B: &[u8] = b"5|B\r\n";
    const C: &[u8] = b"9|F|2|7\r\n";

    #[test]
    fn the_expected_stream_passes() {
        let mut v = owed(&[A, B, C]);
        for line in [A, B, C] {
            assert_eq!(v.on_line(line), Ok(()));
        }
        assert_eq!(v.pending(), 0);
        assert_eq!(v.missing(), None);
    }

    #[test]
    fn a_swap_is_a_reorder() {
        let mut v = owed(&[A, B, C]);
        assert_eq!(v.on_line(B), Ok(()));
        assert_eq!(
            v.on_line(A),
            Err(FailureReason::Reordered {
                user: 7,
                client: 0,
                seq: 3,
                after: 5
            })
        );
    }

    #[test]
    fn a_gap_is_missing_at_the_end() {
        let mut v = owed(&[A, B, C]);
        assert_eq!(v.on_line(A), Ok(()));
        assert_eq!(v.on_line(C), Ok(()));
        assert_eq!(v.pending(), 0);
        assert_eq!(
            v.missing(),
            Some(FailureReason::Missing {
                user: 7,
                client: 0,
                seq: 5,
                received_instead: 9,
                expected: 3,
                received: 2
            })
        );
    }

    #[test]
    fn a_repeat_is_a_duplicate_and_a_stranger_is_unexpected() {
        let mut v = owed(&[A, C]);
        assert_eq!(v.on_line(A), Ok(()));
        assert!(matches!(
            v.on_line(A),
            Err(FailureReason::Duplicate { seq: 3, .. })
        ));
        let mut v = owed(&[A, C]);
        assert!(matches!(
            v.on_line(B),
            Err(FailureReason::Unexpected { seq: 5, .. })
        ));
        assert_eq!(v.pending(), 2, "an unexpected line pops nothing");
        let mut v = owed(&[A, C]);
        assert_eq!(v.on_line(C), Ok(()));
        assert!(matches!(
            v.on_line(b"1|B\r\n"),
            Err(FailureReason::Unexpected { seq: 1, .. })
        ));
    }

    #[test]
    fn changed_bytes_are_altered_content() {
        let mut v = owed(&[A]);
        assert!(matches!(
            v.on_line(b"3|P|1|8\r\n"),
            Err(FailureReason::Altered { seq: 3, .. })
        ));
        let mut v = owed(&[A]);
        assert!(matches!(
            v.on_line(b"3|P|1|7\n"),
            Err(FailureReason::Altered { seq: 3, .. })
        ));
        let mut v = owed(&[A]);
        assert!(matches!(
            v.on_line(b"hello\r\n"),
            Err(FailureReason::Garbled { .. })
        ));
    }

    #[test]
    fn timeout_and_disconnect_name_the_first_missing_seq() {
        let mut v = owed(&[A, B, C]);
        assert_eq!(v.on_line(A), Ok(()));
        assert_eq!(
            v.timed_out(20),
            FailureReason::Timeout {
                user: 7,
                client: 0,
                expected: 3,
                received: 1,
                first_missing: 5,
                waited_ms: 20
            }
        );
        assert!(matches!(
            v.disconnected(),
            FailureReason::Disconnected {
                first_missing: Some(5),
                ..
            }
        ));
    }

    #[test]
    fn totals_follow_every_connection() {
        let mut all = owing(Verifiers::new(&[7, 8]), &[(0, A), (1, A), (1, B)]);
        assert_eq!(all.pending(), 3);
        assert_eq!(all.on_line(1, B), Ok(()));
        assert_eq!(all.pending(), 1, "the passed-over seq is no longer pending");
        assert_eq!(all.verified(), 1);
        assert_eq!(all.verified_bytes(), B.len() as u64);
        assert!(all.get(1).missing().is_some());
        assert!(all.get(0).missing().is_none());
    }

    #[test]
    fn counting_only_checks_how_many() {
        let mut all = owing(Verifiers::counting(&[7, 8]), &[(0, A), (0, B), (1, B)]);
        assert_eq!(all.pending(), 3);
        // Order and bytes are not checked, only the count.
        assert_eq!(all.on_line(0, C), Ok(()));
        assert_eq!(all.on_line(0, A), Ok(()));
        assert_eq!(all.pending(), 1);
        assert_eq!(all.get(1).front(), Some(1));
        assert_eq!(all.on_line(1, B), Ok(()));
        assert_eq!((all.pending(), all.get(1).front()), (0, None));
        assert_eq!(
            all.on_line(1, C),
            Err(FailureReason::Unexpected {
                user: 8,
                client: 1,
                seq: 9
            })
        );
        assert_eq!(all.verified(), 3);
        assert_eq!(all.iter().filter_map(|v| v.missing()).count(), 0);
    }
}
