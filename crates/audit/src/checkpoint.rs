//! Signed checkpoints of the chain head, and when to take them.
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::chain::{Hash, Head};

const CHECKPOINT_TAG: &[u8] = b"waihu-audit-checkpoint-v1\0";

/// The chain head at position `seq` (row `event_id`), signed at event time `at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub event_id: i64,
    /// Hex SHA-256 of the row at `seq`.
    pub head: String,
    /// RFC 3339 time of the head row (event time, not wall time).
    pub at: String,
    /// Hex Ed25519 public key that signed it.
    pub key: String,
    /// Hex Ed25519 signature over [`Checkpoint::message`].
    pub sig: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("{file}:{line}: not a checkpoint: {reason}")]
    Parse {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("checkpoint at position {seq}: {reason}")]
    Invalid { seq: i64, reason: String },
}

/// The bytes a checkpoint signs.
pub fn message(seq: i64, event_id: i64, head: &Hash, at: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHECKPOINT_TAG.len() + 56 + at.len());
    m.extend_from_slice(CHECKPOINT_TAG);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&event_id.to_be_bytes());
    m.extend_from_slice(head);
    m.extend_from_slice(&(at.len() as u64).to_be_bytes());
    m.extend_from_slice(at.as_bytes());
    m
}

fn hex32(s: &str, what: &str) -> Result<[u8; 32], String> {
    let v = hex::decode(s).map_err(|e| format!("{what} is not hex: {e}"))?;
    v.try_into()
        .map_err(|v: Vec<u8>| format!("{what} has {} bytes, expected 32", v.len()))
}

impl Checkpoint {
    /// The head hash as bytes.
    pub fn head_hash(&self) -> Result<Hash, CheckpointError> {
        hex32(&self.head, "head").map_err(|reason| CheckpointError::Invalid {
            seq: self.seq,
            reason,
        })
    }

    /// Check the signature, and that it was made by `trusted` (hex public key) when given.
    pub fn verify(&self, trusted: Option<&str>) -> Result<(), CheckpointError> {
        let invalid = |reason: String| CheckpointError::Invalid {
            seq: self.seq,
            reason,
        };
        if let Some(t) = trusted {
            if !t.eq_ignore_ascii_case(&self.key) {
                return Err(invalid(format!(
                    "signed by key {}, not by the trusted key {t}",
                    self.key
                )));
            }
        }
        let key = hex32(&self.key, "key").map_err(&invalid)?;
        let key =
            VerifyingKey::from_bytes(&key).map_err(|e| invalid(format!("bad public key: {e}")))?;
        let sig = hex::decode(&self.sig).map_err(|e| invalid(format!("sig is not hex: {e}")))?;
        let sig =
            Signature::from_slice(&sig).map_err(|e| invalid(format!("bad signature: {e}")))?;
        let head = self.head_hash()?;
        key.verify_strict(&message(self.seq, self.event_id, &head, &self.at), &sig)
            .map_err(|_| invalid("the signature does not match (forged or altered)".into()))
    }

    /// One line of the checkpoint file (JSON, no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("checkpoints serialise")
    }
}

/// Parse a checkpoint file (JSON lines; blank lines ignored). `file` names it in errors.
pub fn parse_file(text: &str, file: &str) -> Result<Vec<Checkpoint>, CheckpointError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cp: Checkpoint = serde_json::from_str(line).map_err(|e| CheckpointError::Parse {
            file: file.into(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(cp);
    }
    Ok(out)
}

/// The Ed25519 key that signs checkpoints.
pub struct Signer(SigningKey);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.public_hex())
    }
}

impl Signer {
    /// From a 32-byte secret seed (the store derives it from the master key).
    pub fn from_seed(seed: &[u8; 32]) -> Signer {
        Signer(SigningKey::from_bytes(seed))
    }

    /// The public key, hex: what verifiers pin.
    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().as_bytes())
    }

    /// Sign `head`, whose row has event time `at` (RFC 3339).
    pub fn sign(&self, head: &Head, at: &str) -> Checkpoint {
        use ed25519_dalek::Signer as _;
        let sig = self
            .0
            .sign(&message(head.seq, head.event_id, &head.hash, at));
        Checkpoint {
            seq: head.seq,
            event_id: head.event_id,
            head: hex::encode(head.hash),
            at: at.into(),
            key: self.public_hex(),
            sig: hex::encode(sig.to_bytes()),
        }
    }
}

/// When to sign the head: after `every_events` rows or `every` of event time since the
/// last checkpoint, whichever comes first, and as soon as the chain has rows but no
/// checkpoint at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub every_events: i64,
    pub every: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            every_events: 1000,
            every: Duration::minutes(5),
        }
    }
}

impl Policy {
    /// `last`: the position and time of the last checkpoint, if any.
    pub fn due(
        &self,
        head_seq: i64,
        head_at: DateTime<Utc>,
        last: Option<(i64, DateTime<Utc>)>,
    ) -> bool {
        match last {
            _ if head_seq <= 0 => false,
            None => true,
            Some((seq, _)) if head_seq <= seq => false,
            Some((seq, at)) => head_seq - seq >= self.every_events || head_at - at >= self.every,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::GENESIS;

    fn head(seq: i64) -> Head {
        Head {
            seq,
            event_id: seq + 10,
            hash: [seq as u8; 32],
        }
    }

    #[test]
    fn signatures_verify_and_catch_changes() {
        let s = Signer::from_seed(&[7; 32]);
        let cp = s.sign(&head(5), "2026-01-01T00:00:00.000000Z");
        cp.verify(None).unwrap();
        cp.verify(Some(&s.public_hex())).unwrap();
        let other = Signer::from_seed(&[8; 32]);
        assert!(cp.verify(Some(&other.public_hex())).is_err());
        for tamper in [
            |c: &mut Checkpoint| c.seq += 1,
            |c: &mut Checkpoint| c.event_id += 1,
            |c: &mut Checkpoint| c.head = hex::encode(GENESIS),
            |c: &mut Checkpoint| c.at = "2026-01-01T00:00:01.000000Z".into(),
        ] {
            let mut bad = cp.clone();
            tamper(&mut bad);
            assert!(bad.verify(None).is_err(), "{bad:?}");
        }
        // Re-signed by another key: valid alone, refused against the pinned key.
        let forged = other.sign(&head(5), &cp.at);
        forged.verify(None).unwrap();
        assert!(forged.verify(Some(&s.public_hex())).is_err());
    }

    #[test]
    fn file_round_trip_and_errors_name_the_line() {
        let s = Signer::from_seed(&[1; 32]);
        let a = s.sign(&head(1), "2026-01-01T00:00:00.000000Z");
        let b = s.sign(&head(2), "2026-01-01T00:01:00.000000Z");
        let text = format!("{}\n\n{}\n", a.to_line(), b.to_line());
        assert_eq!(parse_file(&text, "cp").unwrap(), vec![a.clone(), b]);
        let bad = format!("{}\n{{\"seq\": 2\n", a.to_line());
        match parse_file(&bad, "cp.jsonl") {
            Err(CheckpointError::Parse { file, line, .. }) => {
                assert_eq!((file.as_str(), line), ("cp.jsonl", 2))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn policy_counts_events_and_event_time() {
        let p = Policy {
            every_events: 3,
            every: Duration::minutes(5),
        };
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(!p.due(0, t0, None));
        assert!(p.due(1, t0, None));
        assert!(!p.due(3, t0, Some((1, t0))));
        assert!(p.due(4, t0, Some((1, t0))));
        assert!(p.due(2, t0 + Duration::minutes(5), Some((1, t0))));
        assert!(!p.due(1, t0 + Duration::minutes(9), Some((1, t0))));
    }
}
