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

pub struct Window<P, C> {
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
}

impl<P: Clone, C> Window<P, C> {
    /// `size`: submit parts unanswered at once (at least 1). Sequence numbers run
    /// `1..=max_seq` and wrap.
    pub fn new(size: usize, response_timeout: Duration, max_seq: u32) -> Window<P, C> {
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
        }
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
    pub fn pump<E: Display>(
        &mut self,
        now: Instant,
        mut encode: impl FnMut(u32, P) -> Result<Vec<u8>, E>,
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
    pub fn request<E: Display>(
        &mut self,
        now: Instant,
        req: C,
        encode: impl FnOnce(u32) -> Result<Vec<u8>, E>,
    ) {
        self.send(now, Request::Control(req), encode);
    }

    fn send<E: Display>(
        &mut self,
        now: Instant,
        req: Request<C>,
        encode: impl FnOnce(u32) -> Result<Vec<u8>, E>,
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

    /// A part was accepted with the gateway's id. When it was the last one missing, the
    /// submission is over: its ids, in part order.
    pub fn accepted(
        &mut self,
        id: SubmitId,
        part: usize,
        gateway_id: String,
    ) -> Option<Vec<String>> {
        let s = self.submissions.get_mut(&id)?;
        if let Some(slot) = s.ids.get_mut(part) {
            *slot = Some(gateway_id);
        }
        if !s.ids.iter().all(Option::is_some) {
            return None;
        }
        let s = self.submissions.remove(&id)?;
        Some(s.ids.into_iter().flatten().collect())
    }

    /// Ends a submission without success. False when it had already ended.
    pub fn finish(&mut self, id: SubmitId) -> bool {
        if self.submissions.remove(&id).is_some() {
            self.queue.retain(|q| *q != id);
            true
        } else {
            false
        }
    }

    /// Gateway ids of the parts of a submission accepted so far.
    pub fn accepted_ids(&self, id: SubmitId) -> Vec<String> {
        self.submissions
            .get(&id)
            .map(|s| s.ids.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }

    /// Requests whose deadline has passed, taken out of the table.
    pub fn expired(&mut self, now: Instant) -> Vec<Request<C>> {
        let seqs: Vec<u32> = self
            .outstanding
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(seq, _)| *seq)
            .collect();
        seqs.into_iter().filter_map(|s| self.answered(s)).collect()
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

    /// The link is gone: nothing is in flight any more. Returns the submissions of which a
    /// part went out (the gateway may have them), still in the table for the caller to
    /// finish; the others stay queued for the next connection.
    pub fn link_lost(&mut self) -> Vec<SubmitId> {
        self.outstanding.clear();
        self.submits_in_flight = 0;
        self.submissions
            .iter()
            .filter(|(_, s)| s.sent > 0)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Drops what waits to be written (the socket it was for is gone).
    pub fn clear_transmit(&mut self) {
        self.tx.clear();
    }

    /// Takes the submissions of which nothing has gone out yet out of the queue (shutting
    /// down), for the caller to finish; half-sent ones stay.
    pub fn unsent(&mut self) -> Vec<SubmitId> {
        let ids: Vec<SubmitId> = self.queue.drain(..).collect();
        let mut out = Vec::new();
        for id in ids {
            if self.submissions.get(&id).is_some_and(|s| s.sent == 0) {
                out.push(id);
            } else {
                self.queue.push_back(id);
            }
        }
        out
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

    fn encode(seq: u32, p: &'static str) -> Result<Vec<u8>, String> {
        Ok(format!("{seq}:{p}").into_bytes())
    }

    #[test]
    fn parts_go_out_within_the_window_and_complete_in_order() {
        let now = Instant::now();
        let mut w: Window<&'static str, ()> = Window::new(2, Duration::from_secs(5), 3);
        let a = w.enqueue(vec!["a1", "a2"]);
        let b = w.enqueue(vec!["b1"]);
        w.pump(now, encode);
        let sent: Vec<_> = std::iter::from_fn(|| w.poll_transmit()).collect();
        assert_eq!(sent, vec![b"1:a1".to_vec(), b"2:a2".to_vec()]);
        assert!(matches!(w.answered(2), Some(Request::Submit { id, part: 1 }) if id == a));
        assert_eq!(w.accepted(a, 1, "x2".into()), None);
        w.pump(now, encode);
        // Sequence numbers wrap after max_seq.
        assert_eq!(w.poll_transmit(), Some(b"3:b1".to_vec()));
        assert!(matches!(
            w.answered(1),
            Some(Request::Submit { part: 0, .. })
        ));
        assert_eq!(
            w.accepted(a, 0, "x1".into()),
            Some(vec!["x1".into(), "x2".into()])
        );
        w.request(now, (), |seq| encode(seq, "ping"));
        assert_eq!(w.poll_transmit(), Some(b"1:ping".to_vec()));
        assert!(w.awaits(|_| true));
        let lost = w.link_lost();
        assert_eq!(lost, vec![b]);
        assert_eq!(w.deadline(), None);
    }

    #[test]
    fn expired_requests_leave_the_table_and_unsent_submissions_can_be_abandoned() {
        let now = Instant::now();
        let mut w: Window<&'static str, ()> = Window::new(1, Duration::from_secs(5), 100);
        let a = w.enqueue(vec!["a"]);
        let b = w.enqueue(vec!["b"]);
        w.pump(now, encode);
        assert_eq!(w.expired(now + Duration::from_secs(4)).len(), 0);
        let gone = w.expired(now + Duration::from_secs(5));
        assert!(matches!(gone.as_slice(), [Request::Submit { id, .. }] if *id == a));
        assert!(w.finish(a));
        assert!(!w.finish(a));
        assert_eq!(w.unsent(), vec![b]);
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
