//! The sans-IO table of a client's submissions and requests: what SMPP's and CMPP's
//! sessions share once their PDUs are set aside.
//!
//! A submission is one text to one number, carried in one or more parts (`P`: a protocol's
//! submit body). Parts go out in order while fewer than `size` are unanswered; every
//! request (a part or one of the protocol's control requests `C`: login, keep-alive,
//! logout) gets the next sequence number and a response deadline. The session decodes the
//! answers and tells the window which submission they settle; the window says when one is
//! complete, and which ones a lost link leaves unknown (a part went out) or untouched
//! (nothing went out: they wait for the next connection).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Display;
use std::time::{Duration, Instant};

pub type SubmitId = u64;

/// How a submission ended, in the protocol-independent cases (a refusal carries the
/// protocol's own code, so the session reports it itself). A protocol's event type
/// converts from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Every part accepted; the gateway's ids in part order.
    Submitted { id: SubmitId, ids: Vec<String> },
    /// Nothing went out: the gateway surely does not have it.
    NotSent { id: SubmitId, reason: String },
    /// A part went out and no answer came: the gateway may have it. Parts accepted so far
    /// are listed.
    Unknown {
        id: SubmitId,
        reason: String,
        accepted_ids: Vec<String>,
    },
}

/// What a sequence number was used for.
#[derive(Debug)]
pub enum Request<C> {
    Submit { id: SubmitId, part: usize },
    Control(C),
}

struct Submission<P> {
    parts: Vec<P>,
    /// The gateway's id of each part, once accepted.
    ids: Vec<Option<String>>,
    /// Parts put on the wire so far.
    sent: usize,
}

/// The table, with the session's event queue `E`: how submissions end is reported there,
/// in order with the session's own events.
pub struct Window<P, C, E> {
    size: usize,
    response_timeout: Duration,
    max_seq: u32,
    next_seq: u32,
    next_submit: SubmitId,
    outstanding: BTreeMap<u32, (Request<C>, Instant)>,
    submits_in_flight: usize,
    submissions: HashMap<SubmitId, Submission<P>>,
    /// Submissions with parts still to send, in order.
    queue: VecDeque<SubmitId>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<E>,
}

impl<P: Clone, C, E: From<Settled>> Window<P, C, E> {
    /// `size`: submit parts unanswered at once (at least 1). Sequence numbers run
    /// `1..=max_seq` and wrap.
    pub fn new(size: usize, response_timeout: Duration, max_seq: u32) -> Window<P, C, E> {
        Window {
            size: size.max(1),
            response_timeout,
            max_seq,
            next_seq: 1,
            next_submit: 1,
            outstanding: BTreeMap::new(),
            submits_in_flight: 0,
            submissions: HashMap::new(),
            queue: VecDeque::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Queues one of the session's own events.
    pub fn emit(&mut self, e: E) {
        self.events.push_back(e);
    }

    pub fn poll_event(&mut self) -> Option<E> {
        self.events.pop_front()
    }

    /// Submissions not yet finished (queued or in flight).
    pub fn pending(&self) -> usize {
        self.submissions.len()
    }

    /// Queues a submission of these parts; [`Window::pump`] sends them.
    pub fn enqueue(&mut self, parts: Vec<P>) -> SubmitId {
        let id = self.next_submit;
        self.next_submit += 1;
        let n = parts.len();
        self.submissions.insert(
            id,
            Submission {
                parts,
                ids: vec![None; n],
                sent: 0,
            },
        );
        self.queue.push_back(id);
        id
    }

    /// Sends queued parts while the window has room; `encode` gives the bytes of a part
    /// under a sequence number.
    pub fn pump<X: Display>(
        &mut self,
        now: Instant,
        mut encode: impl FnMut(u32, P) -> Result<Vec<u8>, X>,
    ) {
        while self.submits_in_flight < self.size {
            let Some(&id) = self.queue.front() else {
                break;
            };
            let Some(s) = self.submissions.get_mut(&id) else {
                self.queue.pop_front();
                continue;
            };
            let part = s.sent;
            let Some(p) = s.parts.get(part).cloned() else {
                self.queue.pop_front();
                continue;
            };
            s.sent += 1;
            if s.sent == s.parts.len() {
                self.queue.pop_front();
            }
            self.submits_in_flight += 1;
            self.send(now, Request::Submit { id, part }, |seq| encode(seq, p));
        }
    }

    /// Sends a control request (login, keep-alive, logout) under the next sequence number.
    pub fn request<X: Display>(
        &mut self,
        now: Instant,
        req: C,
        encode: impl FnOnce(u32) -> Result<Vec<u8>, X>,
    ) {
        self.send(now, Request::Control(req), encode);
    }

    fn send<X: Display>(
        &mut self,
        now: Instant,
        req: Request<C>,
        encode: impl FnOnce(u32) -> Result<Vec<u8>, X>,
    ) {
        let seq = self.next_seq;
        self.next_seq = if seq >= self.max_seq { 1 } else { seq + 1 };
        match encode(seq) {
            Ok(bytes) => {
                self.tx.push_back(bytes);
                self.outstanding
                    .insert(seq, (req, now + self.response_timeout));
            }
            // Submissions are checked before they are queued; control requests always
            // encode.
            Err(e) => tracing::error!(%e, "request does not encode"),
        }
    }

    /// Queues bytes that need no answer (a response to the gateway's request).
    pub fn push_transmit(&mut self, bytes: Vec<u8>) {
        self.tx.push_back(bytes);
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    /// What an answer with this sequence number answers, if anything still waits for it.
    pub fn answered(&mut self, seq: u32) -> Option<Request<C>> {
        let (req, _) = self.outstanding.remove(&seq)?;
        if matches!(req, Request::Submit { .. }) {
            self.submits_in_flight -= 1;
        }
        Some(req)
    }

    /// A part was accepted with the gateway's id; when it was the last one missing, the
    /// submission is over ([`Settled::Submitted`]).
    pub fn accepted(&mut self, id: SubmitId, part: usize, gateway_id: String) {
        let Some(s) = self.submissions.get_mut(&id) else {
            return;
        };
        if let Some(slot) = s.ids.get_mut(part) {
            *slot = Some(gateway_id);
        }
        if s.ids.iter().all(Option::is_some) {
            if let Some(s) = self.submissions.remove(&id) {
                let ids = s.ids.into_iter().flatten().collect();
                self.emit(Settled::Submitted { id, ids }.into());
            }
        }
    }

    /// Ends a submission with the session's own event (a refusal), unless it has ended.
    pub fn finish(&mut self, id: SubmitId, event: impl FnOnce() -> E) {
        if self.submissions.remove(&id).is_some() {
            self.queue.retain(|q| *q != id);
            self.emit(event());
        }
    }

    /// Ends a submission as [`Settled::Unknown`]: the gateway may have it.
    pub fn unknown(&mut self, id: SubmitId, reason: String) {
        let accepted_ids = self
            .submissions
            .get(&id)
            .map(|s| s.ids.iter().flatten().cloned().collect())
            .unwrap_or_default();
        self.finish(id, || {
            Settled::Unknown {
                id,
                reason,
                accepted_ids,
            }
            .into()
        });
    }

    /// Takes the requests whose deadline has passed out of the table: submissions end as
    /// [`Settled::Unknown`] (`why`), the control requests are returned.
    pub fn expired(&mut self, now: Instant, why: &str) -> Vec<C> {
        let seqs: Vec<u32> = self
            .outstanding
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(seq, _)| *seq)
            .collect();
        let mut controls = Vec::new();
        for seq in seqs {
            match self.answered(seq) {
                Some(Request::Submit { id, .. }) => self.unknown(id, why.to_string()),
                Some(Request::Control(c)) => controls.push(c),
                None => {}
            }
        }
        controls
    }

    /// Whether a control request like this is waiting for its answer.
    pub fn awaits(&self, like: impl Fn(&C) -> bool) -> bool {
        self.outstanding.values().any(|(r, _)| match r {
            Request::Control(c) => like(c),
            Request::Submit { .. } => false,
        })
    }

    /// The earliest response deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.outstanding.values().map(|(_, d)| *d).min()
    }

    /// The link is gone (`why`): nothing is in flight any more. Submissions of which a part
    /// went out end as [`Settled::Unknown`] (the remaining parts alone would be useless);
    /// the others stay queued for the next connection.
    pub fn link_lost(&mut self, why: &str) {
        self.outstanding.clear();
        self.submits_in_flight = 0;
        let started: Vec<SubmitId> = self
            .submissions
            .iter()
            .filter(|(_, s)| s.sent > 0)
            .map(|(id, _)| *id)
            .collect();
        for id in started {
            self.unknown(id, why.to_string());
        }
    }

    /// Drops what waits to be written (the socket it was for is gone).
    pub fn clear_transmit(&mut self) {
        self.tx.clear();
    }

    /// Gives up every submission of which nothing has gone out yet ([`Settled::NotSent`]:
    /// shutting down); half-sent ones stay.
    pub fn abandon_unsent(&mut self, why: &str) {
        let ids: Vec<SubmitId> = self.queue.drain(..).collect();
        for id in ids {
            if self.submissions.get(&id).is_some_and(|s| s.sent == 0) {
                self.submissions.remove(&id);
                let reason = why.to_string();
                self.emit(Settled::NotSent { id, reason }.into());
            } else {
                self.queue.push_back(id);
            }
        }
    }
}

/// Partial MO messages kept at most; a peer sending only first parts cannot grow memory.
const MAX_MO_PARTIALS: usize = 256;

/// Mobile-originated texts that came in parts, waiting for their siblings: (sender,
/// concatenation reference `R`) → (total, parts by number).
pub struct MoParts<R> {
    partial: HashMap<(String, R), (u8, BTreeMap<u8, String>)>,
}

impl<R> Default for MoParts<R> {
    fn default() -> Self {
        MoParts {
            partial: HashMap::new(),
        }
    }
}

impl<R: std::hash::Hash + Eq + Clone> MoParts<R> {
    /// Adds part `seq` of `total`; the whole text once every part is in.
    pub fn add(
        &mut self,
        from: &str,
        reference: R,
        total: u8,
        seq: u8,
        text: String,
    ) -> Option<String> {
        let key = (from.to_string(), reference);
        if !self.partial.contains_key(&key) && self.partial.len() >= MAX_MO_PARTIALS {
            tracing::warn!("too many partial MO messages; dropping a part");
            return None;
        }
        let entry = self
            .partial
            .entry(key.clone())
            .or_insert_with(|| (total, BTreeMap::new()));
        entry.1.insert(seq, text);
        if entry.1.len() < entry.0 as usize {
            return None;
        }
        let (_, parts) = self.partial.remove(&key)?;
        Some(parts.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type W = Window<&'static str, (), Settled>;

    fn encode(seq: u32, p: &'static str) -> Result<Vec<u8>, String> {
        Ok(format!("{seq}:{p}").into_bytes())
    }

    #[test]
    fn parts_go_out_within_the_window_and_complete_in_order() {
        let now = Instant::now();
        let mut w = W::new(2, Duration::from_secs(5), 3);
        let a = w.enqueue(vec!["a1", "a2"]);
        let b = w.enqueue(vec!["b1"]);
        w.pump(now, encode);
        let sent: Vec<_> = std::iter::from_fn(|| w.poll_transmit()).collect();
        assert_eq!(sent, vec![b"1:a1".to_vec(), b"2:a2".to_vec()]);
        assert!(matches!(w.answered(2), Some(Request::Submit { id, part: 1 }) if id == a));
        w.accepted(a, 1, "x2".into());
        assert_eq!(w.poll_event(), None);
        w.pump(now, encode);
        // Sequence numbers wrap after max_seq.
        assert_eq!(w.poll_transmit(), Some(b"3:b1".to_vec()));
        assert!(matches!(
            w.answered(1),
            Some(Request::Submit { part: 0, .. })
        ));
        w.accepted(a, 0, "x1".into());
        let ids = vec!["x1".to_string(), "x2".to_string()];
        assert_eq!(w.poll_event(), Some(Settled::Submitted { id: a, ids }));
        w.request(now, (), |seq| encode(seq, "ping"));
        assert_eq!(w.poll_transmit(), Some(b"1:ping".to_vec()));
        assert!(w.awaits(|_| true));
        w.link_lost("gone");
        let reason = "gone".to_string();
        let accepted_ids = Vec::new();
        let unknown = Settled::Unknown {
            id: b,
            reason,
            accepted_ids,
        };
        assert_eq!(w.poll_event(), Some(unknown));
        assert_eq!(w.deadline(), None);
    }

    #[test]
    fn expired_requests_leave_the_table_and_unsent_submissions_can_be_abandoned() {
        let now = Instant::now();
        let mut w = W::new(1, Duration::from_secs(5), 100);
        let a = w.enqueue(vec!["a"]);
        let b = w.enqueue(vec!["b"]);
        w.pump(now, encode);
        assert!(w.expired(now + Duration::from_secs(4), "late").is_empty());
        assert!(w.expired(now + Duration::from_secs(5), "late").is_empty());
        assert!(matches!(w.poll_event(), Some(Settled::Unknown { id, .. }) if id == a));
        w.finish(a, || panic!("a has ended"));
        w.abandon_unsent("bye");
        let reason = "bye".to_string();
        assert_eq!(w.poll_event(), Some(Settled::NotSent { id: b, reason }));
        assert_eq!(w.pending(), 0);
    }

    #[test]
    fn mo_parts_reassemble_in_number_order() {
        let mut m = MoParts::default();
        assert_eq!(m.add("+1", 7u8, 2, 2, "world".into()), None);
        assert_eq!(m.add("+2", 7u8, 2, 1, "other".into()), None);
        assert_eq!(
            m.add("+1", 7u8, 2, 1, "hello ".into()),
            Some("hello world".into())
        );
    }
}
