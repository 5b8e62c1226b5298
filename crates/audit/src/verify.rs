//! Walking the chain: the first bad row and what is wrong with it.
//!
//! Feed rows in storage order (by id) to [`Verifier::push`] until it returns `false`,
//! then call [`Verifier::finish`]. A row that breaks the chain is classified with the
//! row after it (a swap shows in both) or, for missing positions, with the rest of the
//! log (a position that shows up later was moved, one that never does was deleted).
use serde::Serialize;

use crate::chain::{row_hash, Content, Hash, GENESIS};
use crate::checkpoint::Checkpoint;

/// One stored event row as read, every column possibly tampered with (hence the options).
#[derive(Clone, Debug, Default)]
pub struct RowIn {
    pub id: i64,
    pub seq: Option<i64>,
    pub prev_hash: Option<Vec<u8>>,
    pub hash: Option<Vec<u8>>,
    pub at: Option<String>,
    pub kind: Option<String>,
    pub customer: Option<i64>,
    pub campaign: Option<i64>,
    pub call: Option<String>,
    pub body: Option<String>,
}

impl RowIn {
    fn content(&self) -> Option<Content<'_>> {
        Some(Content {
            at: self.at.as_deref()?,
            kind: self.kind.as_deref()?,
            customer: self.customer,
            campaign: self.campaign,
            call: self.call.as_deref(),
            body: self.body.as_deref()?,
        })
    }

    fn prev(&self) -> Option<Hash> {
        self.prev_hash.as_deref()?.try_into().ok()
    }

    fn stored(&self) -> Option<Hash> {
        self.hash.as_deref()?.try_into().ok()
    }

    /// Whether this row's content hashes to `hash` when placed after `prev` at `seq`.
    fn fits(&self, prev: &Hash, seq: i64, hash: &Hash) -> bool {
        self.content()
            .is_some_and(|c| &row_hash(prev, seq, &c) == hash)
    }

    /// Whether the row is consistent with its own chain fields.
    fn self_consistent(&self) -> bool {
        match (self.seq, self.prev(), self.stored()) {
            (Some(seq), Some(prev), Some(hash)) => self.fits(&prev, seq, &hash),
            _ => false,
        }
    }
}

/// What is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The row's content (or its chain fields) changed after it was written.
    Edited,
    /// Positions of the chain are missing here.
    Deleted,
    /// A row that was never appended through the chain.
    Inserted,
    /// Rows exchanged places or a row was moved.
    Reordered,
    /// Rows at the end are missing, though a checkpoint (or the stored head) covers them.
    Truncated,
    /// The chain is self-consistent but differs from a signed checkpoint: rows were
    /// changed and every later hash recomputed.
    Rewritten,
    /// A checkpoint whose signature fails, or two different signed heads for one position.
    BadCheckpoint,
}

impl Problem {
    /// Chinese and English name, for people.
    pub fn label(self) -> &'static str {
        match self {
            Problem::Edited => "被篡改 edited",
            Problem::Deleted => "被删除 deleted",
            Problem::Inserted => "被插入 inserted",
            Problem::Reordered => "顺序被调换 reordered",
            Problem::Truncated => "尾部被截断 truncated",
            Problem::Rewritten => "链被重算 rewritten",
            Problem::BadCheckpoint => "检查点无效 bad checkpoint",
        }
    }
}

/// The first bad row: its id (when it exists or can be told), chain position, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub problem: Problem,
    pub id: Option<i64>,
    pub seq: Option<i64>,
    pub detail: String,
}

/// The outcome of a verification.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    /// Rows read.
    pub rows: u64,
    /// Last verified position, its row id and hash (hex).
    pub head_seq: i64,
    pub head_id: Option<i64>,
    pub head_hash: String,
    /// Distinct valid checkpoints known, and how many the walk matched.
    pub checkpoints: usize,
    pub checkpoints_matched: usize,
    pub last_checkpoint_seq: Option<i64>,
    /// Verified rows after the last matched checkpoint: protected by the chain alone.
    pub unsigned_rows: i64,
    pub finding: Option<Finding>,
}

#[derive(Clone, Debug)]
struct Gap {
    from: i64,
    to: i64,
    at_id: i64,
    prev_id: Option<i64>,
}

/// The chain walker (sans-IO).
#[derive(Debug)]
pub struct Verifier {
    cps: Vec<(i64, Hash, i64)>,
    next_cp: usize,
    matched: usize,
    last_cp_seq: i64,
    first_after_cp: Option<i64>,
    cp_problem: Option<Finding>,
    expected: i64,
    prev: Hash,
    prev_prev: Hash,
    prev_id: Option<i64>,
    rows: u64,
    pending: Option<RowIn>,
    gap: Option<Gap>,
    finding: Option<Finding>,
}

fn finding(problem: Problem, id: Option<i64>, seq: Option<i64>, detail: String) -> Finding {
    Finding {
        problem,
        id,
        seq,
        detail,
    }
}

/// The id of the first of `count` missing rows between `before` and `after`, when the
/// ids around the hole leave room for exactly those rows.
fn missing_id(before: Option<i64>, after: Option<i64>, count: i64) -> Option<i64> {
    let first = before.unwrap_or(0) + 1;
    match after {
        Some(a) if a - first == count => Some(first),
        None => Some(first),
        _ => None,
    }
}

impl Verifier {
    /// `checkpoints` from every copy (database and files, duplicates allowed);
    /// `trusted_key`: the hex public key they must be signed with, if pinned.
    pub fn new(checkpoints: &[Checkpoint], trusted_key: Option<&str>) -> Verifier {
        let mut cp_problem: Option<Finding> = None;
        let mut note = |f: Finding| {
            if cp_problem.as_ref().is_none_or(|p| f.seq < p.seq) {
                cp_problem = Some(f);
            }
        };
        let mut cps: Vec<(i64, Hash, i64)> = Vec::new();
        for cp in checkpoints {
            match cp.verify(trusted_key).and_then(|()| cp.head_hash()) {
                Ok(h) if cp.seq >= 1 => cps.push((cp.seq, h, cp.event_id)),
                Ok(_) => note(finding(
                    Problem::BadCheckpoint,
                    None,
                    Some(cp.seq),
                    format!(
                        "checkpoint signed for position {} (positions start at 1)",
                        cp.seq
                    ),
                )),
                Err(e) => note(finding(
                    Problem::BadCheckpoint,
                    Some(cp.event_id),
                    Some(cp.seq),
                    e.to_string(),
                )),
            }
        }
        cps.sort_by_key(|c| (c.0, c.1));
        cps.dedup_by_key(|c| (c.0, c.1));
        for w in cps.windows(2) {
            if w[0].0 == w[1].0 {
                note(finding(
                    Problem::BadCheckpoint,
                    Some(w[0].2),
                    Some(w[0].0),
                    format!(
                        "two different signed heads for position {} ({} and {}): the chain was rewritten after it was signed",
                        w[0].0,
                        hex::encode(w[0].1),
                        hex::encode(w[1].1)
                    ),
                ));
            }
        }
        cps.dedup_by_key(|c| c.0);
        Verifier {
            cps,
            next_cp: 0,
            matched: 0,
            last_cp_seq: 0,
            first_after_cp: None,
            cp_problem,
            expected: 1,
            prev: GENESIS,
            prev_prev: GENESIS,
            prev_id: None,
            rows: 0,
            pending: None,
            gap: None,
            finding: None,
        }
    }

    /// The next row in id order. Returns `false` once the outcome is decided.
    pub fn push(&mut self, r: RowIn) -> bool {
        if self.finding.is_some() {
            return false;
        }
        self.rows += 1;
        if let Some(g) = &self.gap {
            // Missing positions that show up further on were moved, not deleted.
            if let Some(s) = r.seq.filter(|s| (g.from..g.to).contains(s)) {
                self.finding = Some(finding(
                    Problem::Reordered,
                    Some(g.at_id),
                    Some(g.from),
                    format!(
                        "row {} stands where chain position {} belongs; position {s} was moved to row {}",
                        g.at_id, g.from, r.id
                    ),
                ));
                return false;
            }
            return true;
        }
        if let Some(p) = self.pending.take() {
            self.finding = Some(self.decide(p, Some(&r)));
            return false;
        }
        let s = self.expected;
        let (Some(seq), Some(prev), Some(hash)) = (r.seq, r.prev(), r.stored()) else {
            self.finding = Some(finding(
                Problem::Inserted,
                Some(r.id),
                r.seq,
                format!(
                    "row {} has no valid chain fields (seq, prev_hash, hash): it was not appended through the chain",
                    r.id
                ),
            ));
            return false;
        };
        if seq > s {
            self.gap = Some(Gap {
                from: s,
                to: seq,
                at_id: r.id,
                prev_id: self.prev_id,
            });
            return true;
        }
        if seq < s {
            self.finding = Some(finding(
                Problem::Inserted,
                Some(r.id),
                Some(seq),
                format!(
                    "row {} repeats chain position {seq}, which an earlier row already holds",
                    r.id
                ),
            ));
            return false;
        }
        let fits = r.fits(&prev, seq, &hash);
        if prev == self.prev && fits {
            return self.accept(&r, seq, hash);
        }
        if fits {
            // The row is intact but was chained to another predecessor than the one stored.
            let q = self.prev_id;
            self.finding = Some(if q.is_some() && prev == self.prev_prev {
                finding(
                    Problem::Inserted,
                    q,
                    Some(seq - 1),
                    format!(
                        "row {} was inserted before row {}, which was chained directly to the row before it",
                        q.unwrap_or_default(),
                        r.id
                    ),
                )
            } else if let Some(q) = q {
                finding(
                    Problem::Edited,
                    Some(q),
                    Some(seq - 1),
                    format!(
                        "row {q} was changed and its hash recomputed: row {} was chained to a different hash",
                        r.id
                    ),
                )
            } else {
                finding(
                    Problem::Edited,
                    Some(r.id),
                    Some(seq),
                    format!(
                        "row {} is the first of the chain but its prev_hash was changed",
                        r.id
                    ),
                )
            });
            return false;
        }
        self.pending = Some(r);
        true
    }

    fn accept(&mut self, r: &RowIn, seq: i64, hash: Hash) -> bool {
        if seq == self.last_cp_seq + 1 {
            self.first_after_cp = Some(r.id);
        }
        while self.next_cp < self.cps.len() && self.cps[self.next_cp].0 < seq {
            self.next_cp += 1;
        }
        if let Some(&(cp_seq, cp_hash, _)) = self.cps.get(self.next_cp) {
            if cp_seq == seq {
                if cp_hash != hash {
                    self.finding = Some(finding(
                        Problem::Rewritten,
                        self.first_after_cp,
                        Some(self.last_cp_seq + 1),
                        format!(
                            "the chain was recomputed: at position {seq} (row {}) the hash is {}, but the signed checkpoint says {}; a row between position {} and {seq} was changed, inserted or deleted",
                            r.id,
                            hex::encode(hash),
                            hex::encode(cp_hash),
                            self.last_cp_seq + 1
                        ),
                    ));
                    return false;
                }
                self.matched += 1;
                self.last_cp_seq = seq;
                self.next_cp += 1;
            }
        }
        self.prev_prev = self.prev;
        self.prev = hash;
        self.prev_id = Some(r.id);
        self.expected = seq + 1;
        true
    }

    /// Classify row `p`, which holds the expected position but does not verify, with
    /// the row after it.
    fn decide(&self, p: RowIn, next: Option<&RowIn>) -> Finding {
        let s = self.expected;
        let (pp, ph) = (p.prev(), p.stored());
        if let Some(n) = next {
            if n.seq == Some(s) && n.prev() == Some(self.prev) && n.self_consistent() {
                return finding(
                    Problem::Inserted,
                    Some(p.id),
                    Some(s),
                    format!(
                        "row {} claims chain position {s}, which belongs to row {}: it was inserted",
                        p.id, n.id
                    ),
                );
            }
            if let (Some(pp), Some(ph)) = (pp, ph) {
                if n.fits(&pp, s, &ph) {
                    return finding(
                        Problem::Reordered,
                        Some(p.id),
                        Some(s),
                        format!(
                            "rows {} and {} exchanged their contents: the event chained at position {s} is now in row {}",
                            p.id, n.id, n.id
                        ),
                    );
                }
            }
        }
        // `p` is genuine one position earlier, chained to the same row as the row
        // accepted before it: that row was slipped in and the positions after renumbered.
        if let (Some(q), Some(pp), Some(ph)) = (self.prev_id, pp, ph) {
            if pp == self.prev_prev && p.fits(&pp, s - 1, &ph) {
                return finding(
                    Problem::Inserted,
                    Some(q),
                    Some(s - 1),
                    format!(
                        "row {q} was inserted before row {}, which was chained to the row before it (later positions renumbered)",
                        p.id
                    ),
                );
            }
        }
        let edited = |what: &str| {
            finding(
                Problem::Edited,
                Some(p.id),
                Some(s),
                format!("row {} was changed after it was written: {what}", p.id),
            )
        };
        if pp == Some(self.prev) {
            return edited("its content no longer matches its hash");
        }
        if ph.is_some() && next.is_some_and(|n| n.prev() == ph) {
            return edited("its content and prev_hash no longer match its hash");
        }
        finding(
            Problem::Inserted,
            Some(p.id),
            Some(s),
            format!(
                "row {} does not belong to the chain: neither its hash nor its link to the row before it ({}) checks out",
                p.id,
                self.prev_id.map_or("none".into(), |i| i.to_string())
            ),
        )
    }

    /// End of the rows. `stored_head`: the chain head the database records (position,
    /// row id), which catches a cut tail when no checkpoint covers it yet.
    pub fn finish(mut self, stored_head: Option<(i64, i64)>) -> Report {
        if self.finding.is_none() {
            if let Some(p) = self.pending.take() {
                self.finding = Some(self.decide(p, None));
            }
        }
        if self.finding.is_none() {
            if let Some(g) = self.gap.take() {
                let count = g.to - g.from;
                self.finding = Some(finding(
                    Problem::Deleted,
                    missing_id(g.prev_id, Some(g.at_id), count),
                    Some(g.from),
                    format!(
                        "{count} row(s) deleted: chain positions {}..={} are missing between row {} and row {}",
                        g.from,
                        g.to - 1,
                        g.prev_id.map_or("(start)".into(), |i| i.to_string()),
                        g.at_id
                    ),
                ));
            }
        }
        let last = self.expected - 1;
        if self.finding.is_none() {
            if let Some(&(cp_seq, _, cp_id)) = self.cps.last().filter(|c| c.0 > last) {
                self.finding = Some(finding(
                    Problem::Truncated,
                    missing_id(self.prev_id, Some(cp_id + 1), cp_seq - last),
                    Some(last + 1),
                    format!(
                        "rows after row {} are missing: the log ends at position {last}, but a signed checkpoint covers position {cp_seq} (row {cp_id})",
                        self.prev_id.map_or("(start)".into(), |i| i.to_string())
                    ),
                ));
            } else if let Some((head_seq, head_id)) = stored_head.filter(|h| h.0 > last) {
                self.finding = Some(finding(
                    Problem::Truncated,
                    missing_id(self.prev_id, Some(head_id + 1), head_seq - last),
                    Some(last + 1),
                    format!(
                        "rows after row {} are missing: the log ends at position {last}, but the stored chain head is position {head_seq} (row {head_id})",
                        self.prev_id.map_or("(start)".into(), |i| i.to_string())
                    ),
                ));
            }
        }
        if let Some(cp) = self.cp_problem.take() {
            if self.finding.as_ref().is_none_or(|f| cp.seq < f.seq) {
                self.finding = Some(cp);
            }
        }
        Report {
            ok: self.finding.is_none(),
            rows: self.rows,
            head_seq: last,
            head_id: self.prev_id,
            head_hash: hex::encode(self.prev),
            checkpoints: self.cps.len(),
            checkpoints_matched: self.matched,
            last_checkpoint_seq: (self.last_cp_seq > 0).then_some(self.last_cp_seq),
            unsigned_rows: last - self.last_cp_seq,
            finding: self.finding,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Head;
    use crate::checkpoint::Signer;

    const AT: &str = "2026-01-01T00:00:00.000000Z";

    /// A chain of `n` rows with ids 1..=n, and the head after each row.
    fn chain(n: i64) -> (Vec<RowIn>, Vec<Head>) {
        let mut head = Head::EMPTY;
        let mut rows = Vec::new();
        let mut heads = Vec::new();
        for id in 1..=n {
            let body = format!("{{\"n\":{id}}}");
            let c = Content {
                at: AT,
                kind: "dnc_added",
                customer: Some(id),
                campaign: None,
                call: None,
                body: &body,
            };
            let l = head.append(id, &c);
            heads.push(head);
            rows.push(RowIn {
                id,
                seq: Some(l.seq),
                prev_hash: Some(l.prev_hash.to_vec()),
                hash: Some(l.hash.to_vec()),
                at: Some(AT.into()),
                kind: Some("dnc_added".into()),
                customer: Some(id),
                campaign: None,
                call: None,
                body: Some(body),
            });
        }
        (rows, heads)
    }

    fn run(rows: Vec<RowIn>, cps: &[Checkpoint], head: Option<(i64, i64)>) -> Report {
        let mut v = Verifier::new(cps, None);
        for r in rows {
            if !v.push(r) {
                break;
            }
        }
        v.finish(head)
    }

    fn first(rows: Vec<RowIn>) -> (Problem, Option<i64>) {
        let f = run(rows, &[], None).finding.expect("a finding");
        (f.problem, f.id)
    }

    /// Recompute every chain field from row `from` on, as an attacker who knows the format.
    fn rechain(rows: &mut [RowIn], from: usize) {
        let mut prev: Hash = if from == 0 {
            GENESIS
        } else {
            rows[from - 1].stored().unwrap()
        };
        for (i, r) in rows.iter_mut().enumerate().skip(from) {
            let seq = i as i64 + 1;
            let h = row_hash(&prev, seq, &r.content().unwrap());
            r.seq = Some(seq);
            r.prev_hash = Some(prev.to_vec());
            r.hash = Some(h.to_vec());
            prev = h;
        }
    }

    #[test]
    fn intact_chain_verifies() {
        let (rows, _) = chain(20);
        let r = run(rows, &[], Some((20, 20)));
        assert!(r.ok, "{r:?}");
        assert_eq!((r.rows, r.head_seq, r.head_id), (20, 20, Some(20)));
        assert_eq!(run(Vec::new(), &[], None).finding, None);
    }

    #[test]
    fn names_an_edited_row() {
        let (mut rows, _) = chain(10);
        rows[4].body = Some("{\"n\":0}".into());
        assert_eq!(first(rows), (Problem::Edited, Some(5)));
        let (mut rows, _) = chain(10);
        rows[9].customer = None;
        assert_eq!(first(rows), (Problem::Edited, Some(10)));
        // The hash column alone changed.
        let (mut rows, _) = chain(10);
        rows[2].hash = Some(vec![1; 32]);
        assert_eq!(first(rows), (Problem::Edited, Some(3)));
    }

    #[test]
    fn names_an_edit_whose_own_hash_was_recomputed() {
        let (mut rows, _) = chain(10);
        rows[4].body = Some("{\"n\":0}".into());
        let prev: Hash = rows[3].stored().unwrap();
        rows[4].hash = Some(row_hash(&prev, 5, &rows[4].content().unwrap()).to_vec());
        assert_eq!(first(rows), (Problem::Edited, Some(5)));
    }

    #[test]
    fn names_deleted_rows() {
        let (mut rows, _) = chain(10);
        rows.remove(4);
        let f = run(rows, &[], None).finding.unwrap();
        assert_eq!(
            (f.problem, f.id, f.seq),
            (Problem::Deleted, Some(5), Some(5))
        );
        let (mut rows, _) = chain(10);
        rows.drain(0..3);
        assert_eq!(first(rows), (Problem::Deleted, Some(1)));
    }

    #[test]
    fn names_inserted_rows() {
        // Appended by hand without chain fields.
        let (mut rows, _) = chain(10);
        rows.push(RowIn {
            id: 11,
            body: Some("{}".into()),
            at: Some(AT.into()),
            kind: Some("dnc_removed".into()),
            ..RowIn::default()
        });
        assert_eq!(first(rows), (Problem::Inserted, Some(11)));
        // Slipped in before row 5 with row 5's chain fields copied; the others moved up.
        let (mut rows, _) = chain(10);
        let mut fake = rows[4].clone();
        fake.body = Some("{\"forged\":1}".into());
        for r in rows.iter_mut().skip(4) {
            r.id += 100;
        }
        fake.id = 5;
        rows.insert(4, fake);
        assert_eq!(first(rows), (Problem::Inserted, Some(5)));
        // Correctly chained after row 4 by someone who knows the format; later rows renumbered.
        let (mut rows, _) = chain(10);
        let mut fake = rows[4].clone();
        fake.body = Some("{\"forged\":2}".into());
        let prev: Hash = rows[3].stored().unwrap();
        fake.prev_hash = Some(prev.to_vec());
        fake.hash = Some(row_hash(&prev, 5, &fake.content().unwrap()).to_vec());
        for r in rows.iter_mut().skip(4) {
            r.id += 100;
            r.seq = r.seq.map(|s| s + 1);
        }
        fake.id = 5;
        rows.insert(4, fake);
        assert_eq!(first(rows), (Problem::Inserted, Some(5)));
        // A copy of an earlier row appended at the end.
        let (mut rows, _) = chain(10);
        let mut copy = rows[2].clone();
        copy.id = 11;
        rows.push(copy);
        assert_eq!(first(rows), (Problem::Inserted, Some(11)));
    }

    #[test]
    fn names_reordered_rows() {
        // Ids exchanged (rows swapped in storage order).
        let (mut rows, _) = chain(10);
        rows.swap(4, 5);
        rows[4].id = 5;
        rows[5].id = 6;
        assert_eq!(first(rows), (Problem::Reordered, Some(5)));
        // Contents exchanged, chain columns left in place.
        let (mut rows, _) = chain(10);
        let (a, b) = (rows[4].clone(), rows[5].clone());
        rows[4].customer = b.customer;
        rows[4].body = b.body;
        rows[5].customer = a.customer;
        rows[5].body = a.body;
        assert_eq!(first(rows), (Problem::Reordered, Some(5)));
        // A row moved to the end.
        let (mut rows, _) = chain(10);
        let mut moved = rows.remove(2);
        moved.id = 11;
        rows.push(moved);
        assert_eq!(first(rows), (Problem::Reordered, Some(4)));
    }

    #[test]
    fn checkpoints_catch_a_recomputed_chain_and_a_cut_tail() {
        let s = Signer::from_seed(&[3; 32]);
        let (rows, heads) = chain(30);
        let cps = vec![s.sign(&heads[9], AT), s.sign(&heads[19], AT)];
        let r = run(rows.clone(), &cps, None);
        assert!(r.ok, "{r:?}");
        assert_eq!((r.checkpoints_matched, r.unsigned_rows), (2, 10));

        // Row 15 edited and every later hash recomputed: self-consistent, but not signed.
        let mut bad = rows.clone();
        bad[14].body = Some("{\"n\":0}".into());
        rechain(&mut bad, 14);
        assert_eq!(
            first_with(bad.clone(), &cps),
            (Problem::Rewritten, Some(11))
        );
        // Without checkpoints nothing can tell: the reason they exist.
        assert!(run(bad, &[], None).ok);

        // The tail deleted back to row 15: the checkpoint at 20 is past the end.
        let mut cut = rows.clone();
        cut.truncate(15);
        let f = run(cut.clone(), &cps, None).finding.unwrap();
        assert_eq!(
            (f.problem, f.id, f.seq),
            (Problem::Truncated, Some(16), Some(16))
        );
        // Without checkpoints, the stored head still tells.
        let f = run(cut.clone(), &[], Some((30, 30))).finding.unwrap();
        assert_eq!((f.problem, f.id), (Problem::Truncated, Some(16)));
        // Rows after the last checkpoint can be cut when the stored head is cut too.
        let mut tail = rows.clone();
        tail.truncate(25);
        assert!(run(tail, &cps, Some((25, 25))).ok);
    }

    fn first_with(rows: Vec<RowIn>, cps: &[Checkpoint]) -> (Problem, Option<i64>) {
        let f = run(rows, cps, None).finding.expect("a finding");
        (f.problem, f.id)
    }

    proptest::proptest! {
        /// One tampering of any kind anywhere in a chain of any length is found, named by
        /// the right row id and kind.
        #[test]
        fn any_single_tampering_is_named(n in 2i64..60, at in 0usize..60, what in 0u8..4) {
            let (mut rows, _) = chain(n);
            let i = at % rows.len();
            let expected = match what {
                0 => {
                    rows[i].body = Some("{\"n\":-1}".into());
                    (Problem::Edited, Some(i as i64 + 1))
                }
                1 => {
                    rows.remove(i);
                    (Problem::Deleted, Some(i as i64 + 1))
                }
                2 => {
                    // Exchange ids with the next row (or the previous one at the end).
                    let j = if i + 1 < rows.len() { i + 1 } else { i - 1 };
                    let (a, b) = (i.min(j), i.max(j));
                    rows.swap(a, b);
                    rows[a].id = a as i64 + 1;
                    rows[b].id = b as i64 + 1;
                    (Problem::Reordered, Some(a as i64 + 1))
                }
                _ => {
                    // A row without chain fields, ids after it moved up by 1000.
                    for r in rows.iter_mut().skip(i) {
                        r.id += 1000;
                    }
                    rows.insert(i, RowIn {
                        id: i as i64 + 1,
                        at: Some(AT.into()),
                        kind: Some("dnc_added".into()),
                        body: Some("{}".into()),
                        ..RowIn::default()
                    });
                    (Problem::Inserted, Some(i as i64 + 1))
                }
            };
            let f = run(rows, &[], Some((n, n))).finding;
            let got = f.as_ref().map(|f| (f.problem, f.id));
            // Deleting the last row leaves a cut tail, which the stored head reports.
            if what == 1 && i as i64 == n - 1 {
                proptest::prop_assert_eq!(got, Some((Problem::Truncated, Some(n))));
            } else {
                proptest::prop_assert_eq!(got, Some(expected), "{:?}", f);
            }
        }
    }

    #[test]
    fn forged_and_conflicting_checkpoints_are_reported() {
        let s = Signer::from_seed(&[3; 32]);
        let (rows, heads) = chain(10);
        let mut forged = s.sign(&heads[4], AT);
        forged.head = hex::encode([9u8; 32]);
        let f = run(rows.clone(), &[forged], None).finding.unwrap();
        assert_eq!((f.problem, f.seq), (Problem::BadCheckpoint, Some(5)));
        // Signed with another key than the pinned one.
        let other = Signer::from_seed(&[4; 32]).sign(&heads[4], AT);
        let mut v = Verifier::new(&[other], Some(&s.public_hex()));
        for r in rows.clone() {
            v.push(r);
        }
        assert_eq!(
            v.finish(None).finding.map(|f| f.problem),
            Some(Problem::BadCheckpoint)
        );
        // Duplicates (database and file copies) are fine.
        let cp = s.sign(&heads[4], AT);
        assert!(run(rows, &[cp.clone(), cp], None).ok);
    }
}
