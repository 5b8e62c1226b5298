//! Row hashes and the chain head.
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The `prev_hash` of the first row.
pub const GENESIS: Hash = [0; 32];

const ROW_TAG: &[u8] = b"waihu-audit-row-v1\0";

/// The columns of an event row the chain covers. The row's storage id is not
/// covered: the chain's order is `seq`, and ids are only addresses (webhook cursors).
#[derive(Clone, Copy, Debug)]
pub struct Content<'a> {
    pub at: &'a str,
    pub kind: &'a str,
    pub customer: Option<i64>,
    pub campaign: Option<i64>,
    pub call: Option<&'a str>,
    pub body: &'a str,
}

fn put_str(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_be_bytes());
    h.update(s.as_bytes());
}

fn put_opt_i64(h: &mut Sha256, v: Option<i64>) {
    match v {
        None => h.update([0u8]),
        Some(v) => {
            h.update([1u8]);
            h.update(v.to_be_bytes());
        }
    }
}

/// The hash of the row at position `seq` whose predecessor hashed to `prev`.
pub fn row_hash(prev: &Hash, seq: i64, c: &Content<'_>) -> Hash {
    let mut h = Sha256::new();
    h.update(ROW_TAG);
    h.update(prev);
    h.update(seq.to_be_bytes());
    put_str(&mut h, c.at);
    put_str(&mut h, c.kind);
    put_opt_i64(&mut h, c.customer);
    put_opt_i64(&mut h, c.campaign);
    match c.call {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            put_str(&mut h, s);
        }
    }
    put_str(&mut h, c.body);
    h.finalize().into()
}

/// The last row of the chain: its position, storage id and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub event_id: i64,
    pub hash: Hash,
}

/// The chain fields of one appended row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub seq: i64,
    pub prev_hash: Hash,
    pub hash: Hash,
}

impl Head {
    /// The head of an empty chain.
    pub const EMPTY: Head = Head {
        seq: 0,
        event_id: 0,
        hash: GENESIS,
    };

    /// Chain one more row after this head and move the head onto it. `event_id` is
    /// recorded for checkpoints; pass the id the row will get if it is known.
    pub fn append(&mut self, event_id: i64, c: &Content<'_>) -> Link {
        let seq = self.seq + 1;
        let prev_hash = self.hash;
        let hash = row_hash(&prev_hash, seq, c);
        *self = Head {
            seq,
            event_id,
            hash,
        };
        Link {
            seq,
            prev_hash,
            hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c<'a>(body: &'a str, call: Option<&'a str>) -> Content<'a> {
        Content {
            at: "2026-01-01T00:00:00.000000Z",
            kind: "pii_revealed",
            customer: Some(1),
            campaign: None,
            call,
            body,
        }
    }

    #[test]
    fn fields_cannot_slide_into_each_other() {
        // Same concatenated bytes, different split between call and body.
        let a = row_hash(&GENESIS, 1, &c("xy", Some("ab")));
        let b = row_hash(&GENESIS, 1, &c("bxy", Some("a")));
        assert_ne!(a, b);
        // A missing call is not an empty one.
        assert_ne!(
            row_hash(&GENESIS, 1, &c("x", None)),
            row_hash(&GENESIS, 1, &c("x", Some("")))
        );
    }

    #[test]
    fn append_links_rows() {
        let mut head = Head::EMPTY;
        let l1 = head.append(7, &c("{}", None));
        let l2 = head.append(8, &c("{}", None));
        assert_eq!(l1.prev_hash, GENESIS);
        assert_eq!(l2.prev_hash, l1.hash);
        assert_eq!((head.seq, head.event_id, head.hash), (2, 8, l2.hash));
        // Position is covered: the same content at another position hashes differently.
        assert_ne!(l1.hash, row_hash(&GENESIS, 2, &c("{}", None)));
    }
}
