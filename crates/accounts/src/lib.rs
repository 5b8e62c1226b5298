//! Sign-in decisions for waihu's user accounts, without I/O and without a clock.
//!
//! Every function that depends on time takes `now` as an argument; the server
//! passes request time, tests pass whatever instant they need. The store keeps
//! the state (hashes, counters, the last accepted TOTP step, session times);
//! this crate decides what that state means:
//!
//! - [`password`]: argon2id PHC strings, a dummy hash to spend the same time on
//!   unknown users, the minimum length of a new password;
//! - [`totp`]: RFC 6238 (SHA-1, 6 digits, 30 s, ±1 step) with the step that
//!   matched, so a code already used is refused ([`totp::verify`]);
//! - [`lockout`]: consecutive failures → locked until a time;
//! - [`session`]: idle and absolute expiry;
//! - [`csrf`] and token generation: constant-time comparison;
//! - [`ratelimit`]: a token bucket per client address.
//!
//! Architecture invariant: no sockets, files or clock reads; randomness only
//! from the OS generator for salts, secrets and tokens.
pub mod csrf;
pub mod lockout;
pub mod password;
pub mod ratelimit;
pub mod session;
pub mod totp;

/// A random token: 32 bytes from the OS generator, hex.
pub fn new_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}
