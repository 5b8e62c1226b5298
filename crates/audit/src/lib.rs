//! The tamper-evident audit chain of waihu's event log, as pure functions over rows.
//!
//! Every event row carries `seq` (its position in the chain, 1, 2, 3, ...), `prev_hash`
//! (the hash of the row before it; 32 zero bytes for the first) and `hash`:
//!
//! ```text
//! hash = SHA-256("waihu-audit-row-v1\0" ‖ prev_hash ‖ seq ‖ at ‖ type ‖ customer ‖ campaign ‖ call ‖ body)
//! ```
//!
//! with every field length-prefixed or tagged ([`chain::row_hash`]), so no two rows encode
//! alike. Changing, removing, adding or moving a row breaks the chain at that row. An
//! attacker who also recomputes every later hash is caught by the **checkpoints**: the
//! chain head (`seq`, `hash`) signed with Ed25519 every N events or M minutes of event
//! time ([`checkpoint`]), kept in the database and, appended as JSON lines, in a file
//! outside it that the operator can ship elsewhere.
//!
//! [`verify::Verifier`] takes the rows in storage order and the checkpoints, and names
//! the first bad row and what is wrong with it: edited, deleted, inserted, reordered,
//! truncated after a checkpoint, or rewritten (the chain recomputed under a checkpoint).
//!
//! Architecture invariant: no I/O and no clock. The store reads rows and files and
//! feeds them here; the caller passes the times it stores.

pub mod chain;
pub mod checkpoint;
pub mod verify;

pub use chain::{row_hash, Content, Hash, Head, GENESIS};
pub use checkpoint::{Checkpoint, CheckpointError, Policy, Signer};
pub use verify::{Finding, Problem, Report, RowIn, Verifier};
