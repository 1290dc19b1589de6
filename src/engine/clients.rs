//! The user clients: their records, taking them in and closing them. Their
//! ids ([`ids`]) and their output ([`output`]) have modules of their own.
//! Everything here is driven by the [`Engine`](super::Engine), which
//! decides when in a turn each step runs.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use log::{debug, warn};
use slab::Slab;

mod ids;
mod output;
#[cfg(test)]
mod tests;

use super::consumer::{CloseReason, ConsumerLimits, ConsumerState, Cut};
use super::inbox::Inbox;
use super::outbox::{BroadcastLog, Outbox};
use super::pipeline::Pipeline;
use super::protocol::UserId;
use super::router::ConnKey;
use super::transport::{ConnId, Ending, Transport};
use crate::config::Config;
use crate::log_limit::LogLimit;

/// An idle client outbox larger than this is freed, so one burst does not
/// pin memory for the connection's lifetime.
const OUTBOX_KEEP_BYTES: usize = 64 * 1024;

/// What a user-client connection is doing.
#[derive(Debug)]
enum ClientState {
    /// Connected, collecting its id line. Boxed: an inbox (with the start
    /// of a line it drops, for the log) is larger than a registered
    /// client's state, and every client would pay for it inline.
    AwaitingId(Box<Inbox>),
    /// Registered under a user id; only receives from now on.
    Registered(UserId),
}

/// One user-client connection.
#[derive(Debug)]
pub(super) struct Client<S, P> {
    /// The connection.
    stream: S,
    /// Who is at the other end.
    peer: P,
    /// Awaiting its id, or registered.
    state: ClientState,
    /// What it is owed and has not been written yet.
    outbox: Outbox,
    /// True after a write would have blocked: wait for writable readiness
    /// instead of trying again (readiness is edge-triggered).
    write_blocked: bool,
    /// True once its sending side reached end-of-file: it half-closed
    /// after its id (as `nc -N` does) or went away, which only a write
    /// tells apart. It keeps receiving; nothing more is read from it.
    read_closed: bool,
    /// Set when it must go, with the reason; it is closed at the end of the
    /// turn, never in the middle of a fan-out.
    closing: Option<CloseReason>,
    /// Serial number of the connection: keys are reused, serials not.
    serial: u64,
    /// True while it is on the revisit list (once at most).
    revisit: bool,
    /// True while it is on the owing list.
    owes: bool,
    /// When bytes were last written to it, or when it last owed nothing.
    last_progress: Instant,
    /// True while it holds the source paused.
    holding: bool,
}

impl<S, P> Client<S, P> {
    /// True once it has an id and is not closing: it receives frames.
    pub(super) fn is_live(&self) -> bool {
        self.closing.is_none() && matches!(self.state, ClientState::Registered(_))
    }

    /// What the slow-consumer rule needs to know about it.
    fn consumer_state(&self, log: &BroadcastLog) -> ConsumerState {
        ConsumerState {
            own_bytes: self.outbox.own_bytes(),
            pending: self.outbox.pending(log),
            last_progress: self.last_progress,
            oldest_owed_at: self.outbox.oldest_owed_at(log),
        }
    }
}

/// Names a client for log lines: its user id once it has one, and its peer.
struct Who<'a, S, P>(&'a Client<S, P>);

impl<S, P: fmt::Display> fmt::Display for Who<'_, S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.state {
            ClientState::Registered(user) => write!(f, "user {user} ({})", self.0.peer),
            ClientState::AwaitingId(_) => write!(f, "a client without id ({})", self.0.peer),
        }
    }
}

/// Counters kept about clients.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ClientCounters {
    /// Bytes written to clients.
    pub(super) bytes_out: u64,
    /// Clients cut, by [`Cut`] (indexed by `cut as usize`).
    pub(super) cuts: [u64; Cut::ALL.len()],
    /// Clients closed for a bad, overlong or missing id line.
    pub(super) bad_ids: u64,
    /// Clients closed at the client limit when their id arrived, and
    /// connections refused because every token was taken.
    pub(super) refused: u64,
    /// Connections awaiting their id closed to admit a newer one.
    pub(super) evicted: u64,
}

/// The clients to close at the end of the turn, and the counters and log
/// lines their [`CloseReason`]s drive.
#[derive(Debug)]
pub(super) struct Endings {
    /// Clients to close at the end of this turn.
    marked: Vec<ConnKey>,
    /// Counters, some of them by reason.
    counters: ClientCounters,
    /// Limits warnings about bad or missing ids (a flood of bad ids must
    /// not flood the log).
    id_log: LogLimit,
    /// Limits warnings about cuts, apart, so bad ids cannot hide them.
    cut_log: LogLimit,
    /// Connections awaiting their id and not marked for closing.
    awaiting_id: usize,
}

impl Endings {
    /// No client marked yet.
    fn new(now: Instant) -> Self {
        Endings {
            marked: Vec::new(),
            counters: ClientCounters::default(),
            id_log: LogLimit::new(now),
            cut_log: LogLimit::new(now),
            awaiting_id: 0,
        }
    }

    /// Marks `client` to be closed at the end of the turn for `reason`,
    /// once: counts it by its reason and logs it, with `detail` if given.
    /// False if it was already marked.
    pub(super) fn end<S, P: fmt::Display>(
        &mut self,
        key: ConnKey,
        client: &mut Client<S, P>,
        reason: CloseReason,
        detail: Option<&dyn fmt::Display>,
        now: Instant,
    ) -> bool {
        if client.closing.is_some() {
            return false;
        }
        client.closing = Some(reason);
        self.marked.push(key);
        if matches!(client.state, ClientState::AwaitingId(_)) {
            self.awaiting_id -= 1;
        }
        let limit = match reason {
            CloseReason::Cut(cut) => {
                self.counters.cuts[cut as usize] += 1;
                Some(&mut self.cut_log)
            }
            CloseReason::BadId | CloseReason::NoIdInTime => {
                self.counters.bad_ids = self.counters.bad_ids.saturating_add(1);
                Some(&mut self.id_log)
            }
            // Counted by the caller, in `refused`.
            CloseReason::ClientLimit => Some(&mut self.id_log),
            CloseReason::Evicted => {
                self.counters.evicted = self.counters.evicted.saturating_add(1);
                Some(&mut self.id_log)
            }
            _ => None,
        };
        let level = match limit.map(|limit| limit.allow(now)) {
            Some(true) => log::Level::Warn,
            Some(false) => return true,
            None => log::Level::Debug,
        };
        match detail {
            Some(detail) => log::log!(level, "closing {}: {reason}: {detail}", Who(client)),
            None => log::log!(level, "closing {}: {reason}", Who(client)),
        }
        true
    }
}

/// Every client connection, and the output held for them.
/// Connections accepted on the client port per turn at most (Redis takes
/// 1,000 per readable event). A flood of connections is taken in a turn's
/// worth at a time, with the source, the writes and the timers served in
/// between, instead of accepting (and refusing, once every key is taken)
/// for as long as the flood lasts. The original client connects its
/// clients in bursts of well under this many per turn.
const CLIENT_ACCEPTS_PER_TURN: usize = 1024;

#[derive(Debug)]
pub(super) struct Clients<T: Transport> {
    /// Records by key (the key is a [`ConnKey`] for the router).
    slab: Slab<Client<T::Stream, T::Peer>>,
    /// The slow-consumer rule's limits.
    limits: ConsumerLimits,
    /// Most registered clients at once.
    max_clients: usize,
    /// Most connections awaiting their id at once.
    max_pending: usize,
    /// Longest a client may take to send its id.
    id_timeout: Duration,
    /// Longest id line.
    max_id_line: usize,
    /// Queued bytes past which routing stops.
    max_queued_bytes: usize,
    /// Clients whose outbox gained frames this turn and may be written.
    dirty: Vec<ConnKey>,
    /// Clients to close at the end of this turn, and why.
    endings: Endings,
    /// Clients that owed bytes after their last write, with serials: judged
    /// when one can be due (`next_judgement`).
    owing: Vec<(ConnKey, u64)>,
    /// Clients holding the source paused.
    holders: usize,
    /// The earliest time a client on `owing` can be due (never later).
    next_judgement: Option<Instant>,
    /// Clients whose reads stopped at the last turn's budget with bytes
    /// perhaps left, with serials: read again this turn.
    unread: Vec<(ConnKey, u64)>,
    /// The same for this turn's reads: read again next turn (so a client
    /// is read one budget per turn, however its reads came about).
    unread_next: Vec<(ConnKey, u64)>,
    /// Clients awaiting their id, by deadline (one timeout, so a queue in
    /// accept order is sorted).
    id_deadlines: VecDeque<(Instant, ConnKey, u64)>,
    /// The keys [`Transport::ready_awaiting`] reported, kept between calls
    /// so that asking costs no allocation.
    ready_ids: Vec<ConnKey>,
    /// Connections accepted on the client port this turn.
    accepted_this_turn: usize,
    /// True when the last turn's accepts stopped at their budget: more
    /// connections may wait, and readiness (edge-triggered) will not say
    /// so again.
    left_in_queue: bool,
    /// Bytes in the clients' own outbox buffers (the log not included).
    own_bytes: usize,
    /// Broadcast frames, stored once for every client.
    log: BroadcastLog,
    /// The log's end when every client last took in its broadcasts.
    log_flushed: u64,
    /// The most queued bytes have been.
    queued_bytes_peak: usize,
    /// True once a writable client has a turn's output queued: routing
    /// stops until the outboxes have been written.
    turn_full: bool,
    /// Serial for the next connection.
    next_serial: u64,
    /// Limits log lines about refused connections.
    log_limit: LogLimit,
}

impl<T: Transport> Clients<T> {
    /// No clients yet.
    pub(super) fn new(config: &Config, now: Instant) -> Self {
        Clients {
            slab: Slab::new(),
            limits: ConsumerLimits {
                write_deadline: config.write_deadline,
                max_lag: config.max_lag,
                output_limit: config.client_output_limit,
            },
            max_clients: config.max_clients,
            max_pending: config.max_pending_clients,
            id_timeout: config.id_timeout,
            max_id_line: config.max_id_line,
            max_queued_bytes: config.max_queued_bytes,
            dirty: Vec::new(),
            endings: Endings::new(now),
            owing: Vec::new(),
            holders: 0,
            next_judgement: None,
            unread: Vec::new(),
            unread_next: Vec::new(),
            id_deadlines: VecDeque::new(),
            ready_ids: Vec::new(),
            accepted_this_turn: 0,
            left_in_queue: false,
            own_bytes: 0,
            log: BroadcastLog::new(),
            log_flushed: 0,
            queued_bytes_peak: 0,
            turn_full: false,
            next_serial: 0,
            log_limit: LogLimit::new(now),
        }
    }

    /// Bytes held for clients: their own frames, plus the broadcast log
    /// (counted once, however many clients it serves).
    pub(super) fn queued_bytes(&self) -> usize {
        self.own_bytes + self.log.len()
    }

    /// True if one more connection may be accepted this turn; false once
    /// the turn's budget is spent (the rest wait for the next turn).
    pub(super) fn may_accept(&mut self) -> bool {
        if self.accepted_this_turn >= CLIENT_ACCEPTS_PER_TURN {
            self.left_in_queue = true;
            return false;
        }
        true
    }

    /// The accept queue was found empty (or accepting is paused).
    pub(super) fn accept_queue_drained(&mut self) {
        self.left_in_queue = false;
    }

    /// Connections may be waiting in the accept queue that readiness will
    /// not report again: the next turn accepts without it.
    pub(super) fn revisit_accept_queue(&mut self) {
        self.left_in_queue = true;
    }

    /// True when connections may be left in the accept queue.
    pub(super) fn has_left_in_queue(&self) -> bool {
        self.left_in_queue
    }

    /// True when client `key` is open and not marked for closing.
    pub(super) fn is_open(&self, key: ConnKey) -> bool {
        self.slab.get(key).is_some_and(|c| c.closing.is_none())
    }

    /// Connections open (registered or awaiting their id), closing ones
    /// included until the end of the turn.
    pub(super) fn open(&self) -> usize {
        self.slab.len()
    }

    /// Clients holding the source paused.
    pub(super) fn holders(&self) -> usize {
        self.holders
    }

    /// The clients' counters.
    pub(super) fn counters(&self) -> ClientCounters {
        self.endings.counters
    }

    /// The most bytes ever queued at once.
    pub(super) fn queued_bytes_peak(&self) -> usize {
        self.queued_bytes_peak
    }

    /// True when the output has drained enough for the source to resume:
    /// to half the budget, with no client holding it.
    pub(super) fn output_drained(&self) -> bool {
        self.queued_bytes() <= self.max_queued_bytes / 2 && self.holders == 0
    }

    /// Records a new high of queued bytes.
    pub(super) fn note_peak(&mut self) {
        self.queued_bytes_peak = self.queued_bytes_peak.max(self.queued_bytes());
    }

    /// True when no more may be routed for now: queued output is over the
    /// budget, or a client that still reads is far behind.
    pub(super) fn output_full(&self) -> bool {
        self.queued_bytes() > self.max_queued_bytes || self.holders > 0
    }

    /// The earliest time work is due: a verdict or an id deadline.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let id = self.id_deadlines.front().map(|&(deadline, ..)| deadline);
        self.next_judgement.into_iter().chain(id).min()
    }

    /// Takes a new connection to await its id, closing the oldest one
    /// awaiting its id if `--max-pending-clients` are; returns its key.
    pub(super) fn add(
        &mut self,
        mut stream: T::Stream,
        peer: T::Peer,
        now: Instant,
        net: &mut T,
    ) -> Option<ConnKey> {
        // Refused or not, it was accepted: it counts against the turn's
        // budget (an accept that finds the queue empty does not).
        self.accepted_this_turn += 1;
        if self.slab.len() >= self.max_clients + self.max_pending {
            // Every key is taken until the end of the turn, when the marked
            // ones leave (the shell has a token for each key, no more).
            self.endings.counters.refused = self.endings.counters.refused.saturating_add(1);
            if self.log_limit.allow(now) {
                warn!(
                    "refusing client {peer}: {} connections open or closing this turn",
                    self.slab.len()
                );
            }
            net.close(stream, Ending::Close);
            return None;
        }
        if self.endings.awaiting_id >= self.max_pending {
            self.evict_oldest_awaiting_id(now);
        }
        let key = self.slab.vacant_key();
        if let Err(err) = net.open(&mut stream, ConnId::AwaitingId(key)) {
            warn!("cannot take client {peer}: {err}");
            net.close(stream, Ending::Close);
            return None;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        self.endings.awaiting_id += 1;
        self.id_deadlines
            .push_back((now + self.id_timeout, key, serial));
        debug!("client connected from {peer}");
        self.slab.insert(Client {
            stream,
            peer,
            state: ClientState::AwaitingId(Box::new(Inbox::new(0, self.max_id_line))),
            outbox: Outbox::new(&self.log),
            write_blocked: false,
            read_closed: false,
            closing: None,
            serial,
            revisit: false,
            owes: false,
            last_progress: now,
            holding: false,
        });
        Some(key)
    }

    /// Marks the connection that has waited longest for its id for closing
    /// at the end of the turn, to make room for a new one. (Not at once: a
    /// key freed in the middle of a batch of readiness would be reused, and
    /// the old socket's events in that batch would reach the new one.)
    fn evict_oldest_awaiting_id(&mut self, now: Instant) {
        while let Some((_, key, serial)) = self.id_deadlines.pop_front() {
            let Some(client) = self.slab.get_mut(key) else {
                continue;
            };
            let awaiting = client.serial == serial
                && client.closing.is_none()
                && matches!(client.state, ClientState::AwaitingId(_));
            if awaiting {
                let limit = format_args!(
                    "{} connections await their id (--max-pending-clients), and it waited longest",
                    self.max_pending
                );
                self.endings
                    .end(key, client, CloseReason::Evicted, Some(&limit), now);
                return;
            }
            // Registered or closed since: a stale entry.
        }
    }

    /// The connection was reset or hung up.
    pub(super) fn gone(&mut self, key: ConnKey, now: Instant) {
        if let Some(client) = self.slab.get_mut(key) {
            self.endings.end(key, client, CloseReason::Gone, None, now);
        }
    }

    /// Room to write opened up: writes what it owes.
    pub(super) fn writable(&mut self, key: ConnKey, now: Instant) {
        let Some(client) = self.slab.get_mut(key) else {
            return;
        };
        client.write_blocked = false;
        // A client awaiting its id is owed nothing: its outbox is made anew,
        // at the log's end, when it registers.
        if client.is_live() && client.outbox.pending(&self.log) > 0 {
            self.flush(key, now);
        }
    }

    /// Closes every client marked this turn; one cut for not keeping up is
    /// reset, so what the transport still holds for it is dropped.
    pub(super) fn close_marked(&mut self, pipeline: &mut Pipeline, net: &mut T) {
        for key in std::mem::take(&mut self.endings.marked) {
            let Some(mut client) = self.slab.try_remove(key) else {
                continue;
            };
            if let ClientState::Registered(user) = client.state {
                pipeline.router_mut().unregister(user, key);
            }
            self.own_bytes -= client.outbox.own_bytes();
            set_hold(&mut client, false, &mut self.holders);
            let reason = client.closing.unwrap_or(CloseReason::Shutdown);
            debug!("closed client {} ({reason})", client.peer);
            let ending = match reason {
                CloseReason::Cut(_) => Ending::Reset,
                _ => Ending::Close,
            };
            net.close(client.stream, ending);
        }
    }

    /// Lets the log go of the broadcasts every client has written (or
    /// copied), and frees its buffer once it is empty.
    pub(super) fn release_log(&mut self) {
        if self.log.is_empty() {
            return;
        }
        let needed = self
            .slab
            .iter()
            .filter(|(_, c)| c.is_live())
            .map(|(_, c)| c.outbox.log_needed())
            .min()
            .unwrap_or(self.log.end());
        self.log.release_before(needed);
        self.log.shrink_if_empty(OUTBOX_KEEP_BYTES);
    }
}

/// Records whether `client` holds the source, keeping `holders` the count.
fn set_hold<S, P>(client: &mut Client<S, P>, hold: bool, holders: &mut usize) {
    if hold != client.holding {
        client.holding = hold;
        if hold {
            *holders += 1;
        } else {
            *holders -= 1;
        }
    }
}
