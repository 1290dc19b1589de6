//! Writing clients' outboxes, and judging the ones that still owe bytes by
//! the slow-consumer rule ([`crate::engine::consumer`]).

use std::time::Instant;

use super::{Clients, OUTBOX_KEEP_BYTES, set_hold};
use crate::engine::consumer::{Admit, CloseReason, Cut, Fate, Owing};
use crate::engine::router::ConnKey;
use crate::engine::transport::Transport;

impl<T: Transport> Clients<T> {
    /// Queues `frame` for client `conn` if the slow-consumer rule admits
    /// it (a client it would take past its output limit is cut instead),
    /// and marks the client for writing when the rule says so.
    #[inline]
    pub(in crate::engine) fn queue_frame(&mut self, conn: ConnKey, frame: &[u8], now: Instant) {
        let Some(client) = self.slab.get_mut(conn) else {
            return;
        };
        if client.closing.is_some() {
            return;
        }
        let backlog = Owing {
            own_bytes: client.outbox.own_bytes(),
            pending: client.outbox.pending(&self.log),
            write_blocked: client.write_blocked,
        };
        let (write, end_turn) = match self.limits.admit(&backlog, frame.len()) {
            Admit::Queue { write, end_turn } => (write, end_turn),
            Admit::Cut(cut) => {
                let detail = format!(
                    "{} bytes queued for it alone (limit {})",
                    backlog.own_bytes + frame.len(),
                    self.limits.output_limit
                );
                debug_assert_eq!(cut, Cut::OutputLimit);
                self.cut(conn, cut, &detail, now);
                return;
            }
        };
        client.outbox.push(frame, &self.log, now);
        self.own_bytes = self.own_bytes + client.outbox.own_bytes() - backlog.own_bytes;
        if write {
            self.dirty.push(conn);
        }
        self.turn_full |= end_turn;
        self.note_peak();
    }

    /// Stores a broadcast once in the log; each client takes it in when it
    /// is written (or gets a frame of its own first), which keeps a
    /// broadcast O(1) however many clients there are.
    #[inline]
    pub(in crate::engine) fn queue_broadcast(&mut self, frame: &[u8], now: Instant) {
        self.log.push(frame, now);
        // Every client is owed all of the log since the last write: once
        // that is a turn's worth, the outboxes are written first.
        let unwritten = (self.log.end() - self.log_flushed) as usize;
        if unwritten > self.limits.turn_output_bytes() {
            self.turn_full = true;
        }
        self.note_peak();
    }

    /// True once this turn's output is a turn's worth: routing stops until
    /// the outboxes have been written.
    pub(in crate::engine) fn is_turn_full(&self) -> bool {
        self.turn_full
    }

    /// Writes the outboxes that gained frames this turn: every registered
    /// client's when broadcasts were routed (each takes them in from the
    /// log), else only those that got frames of their own.
    pub(in crate::engine) fn flush_dirty(&mut self, now: Instant) {
        let mut dirty = std::mem::take(&mut self.dirty);
        if self.log.end() != self.log_flushed {
            dirty.clear();
            dirty.extend(
                self.slab
                    .iter()
                    .filter(|(_, c)| c.is_live())
                    .map(|(key, _)| key),
            );
            self.log_flushed = self.log.end();
        }
        for &key in &dirty {
            if self.slab.get(key).is_some_and(|c| c.closing.is_none()) {
                self.flush(key, now);
            }
        }
        dirty.clear();
        self.dirty = dirty;
        self.turn_full = false;
    }

    /// Writes one client's outbox until it is empty or would block (unless
    /// it is known to be blocked), and records its progress: a client that
    /// owes bytes afterwards goes on the owing list.
    pub(super) fn flush(&mut self, key: ConnKey, now: Instant) {
        let Some(client) = self.slab.get_mut(key) else {
            return;
        };
        let own_before = client.outbox.own_bytes();
        let mut written = 0;
        // A blocked client takes nothing in: the broadcasts it owes stay in
        // the log, held once for everyone, until it can be written.
        if !client.write_blocked {
            match client.outbox.write_to(&mut client.stream, &self.log) {
                Ok(n) => written = n,
                Err(err) => {
                    let reason = CloseReason::WriteError;
                    self.endings.end(key, client, reason, Some(&err), now);
                }
            }
        }
        self.own_bytes = self.own_bytes + client.outbox.own_bytes() - own_before;
        self.queued_bytes_peak = self.queued_bytes_peak.max(self.own_bytes + self.log.len());
        self.endings.counters.bytes_out += written as u64;
        if client.closing.is_some() {
            return;
        }
        let pending = client.outbox.pending(&self.log);
        if written > 0 || pending == 0 {
            client.last_progress = now;
        }
        if pending > 0 {
            // `write_to` stops early only when the stream would block.
            client.write_blocked = true;
            if !client.owes {
                // It owed nothing until now: its clock starts now.
                client.owes = true;
                client.last_progress = now;
                self.owing.push((key, client.serial));
            }
        } else {
            client.outbox.shrink_if_idle(OUTBOX_KEEP_BYTES, written);
        }
        // Whether it holds the source, and when it can next be due, change
        // with every write; a verdict waits for the judging step of the turn
        // (`owes` and the owing list change only there, so a client is on
        // the list once).
        let state = client.consumer_state(&self.log);
        let due = match self.limits.fate(&state, now) {
            Fate::Keep {
                holds_source,
                next_check,
            } => {
                set_hold(client, holds_source, &mut self.holders);
                next_check
            }
            Fate::Cut(_) => Some(now),
        };
        if let Some(due) = due {
            self.next_judgement = Some(self.next_judgement.map_or(due, |next| next.min(due)));
        }
    }

    /// Judges every owing client when one can be due (or the list holds
    /// many stale entries): with 10,000 clients owing, a pass every turn
    /// would cost more than the turn.
    pub(in crate::engine) fn judge_owing(&mut self, now: Instant) {
        let due = self.next_judgement.is_some_and(|due| due <= now);
        if !due && self.owing.len() <= 2 * self.slab.len() + 64 {
            return;
        }
        self.next_judgement = None;
        let mut index = 0;
        while index < self.owing.len() {
            let (key, serial) = self.owing[index];
            let current = self
                .slab
                .get(key)
                .is_some_and(|c| c.serial == serial && c.owes);
            if current && self.judge(key, now) {
                index += 1;
                continue;
            }
            if current && let Some(client) = self.slab.get_mut(key) {
                client.owes = false;
            }
            self.owing.swap_remove(index);
        }
    }

    /// Applies the slow-consumer rule's [`Fate`] to one client on the owing
    /// list; true while it stays there (it was not cut and still owes).
    fn judge(&mut self, key: ConnKey, now: Instant) -> bool {
        let Some(client) = self.slab.get_mut(key).filter(|c| c.closing.is_none()) else {
            return false;
        };
        let state = client.consumer_state(&self.log);
        match self.limits.fate(&state, now) {
            Fate::Keep {
                holds_source,
                next_check,
            } => {
                set_hold(client, holds_source, &mut self.holders);
                if let Some(due) = next_check {
                    self.next_judgement =
                        Some(self.next_judgement.map_or(due, |next| next.min(due)));
                }
                state.owes()
            }
            Fate::Cut(cut) => {
                let limits = &self.limits;
                let detail = match cut {
                    Cut::WriteDeadline => format!(
                        "no byte written for {:?} while owing {} (write deadline {:?})",
                        now.saturating_duration_since(state.last_progress),
                        state.pending,
                        limits.write_deadline
                    ),
                    Cut::OutputLimit => format!(
                        "{} bytes queued for it alone (limit {})",
                        state.own_bytes, limits.output_limit
                    ),
                    Cut::Lag => format!(
                        "the oldest of the {} bytes it owes was routed {:?} ago (lag bound {:?})",
                        state.pending,
                        state
                            .oldest_owed_at
                            .map(|at| now.saturating_duration_since(at))
                            .unwrap_or_default(),
                        limits.max_lag
                    ),
                };
                self.cut(key, cut, &detail, now);
                false
            }
        }
    }

    /// Cuts a client that does not keep up, for `cut`, with `detail` for
    /// the log.
    pub(in crate::engine) fn cut(&mut self, key: ConnKey, cut: Cut, detail: &str, now: Instant) {
        if let Some(client) = self.slab.get_mut(key) {
            let reason = CloseReason::Cut(cut);
            self.endings.end(key, client, reason, Some(&detail), now);
        }
    }
}
