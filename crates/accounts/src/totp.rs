//! RFC 6238 time-based one-time codes: HMAC-SHA1, 6 digits, 30 s steps, and
//! the step before and after accepted for clock drift. [`verify`] returns the
//! step that matched; the caller stores it, and a code from that step or an
//! earlier one is refused afterwards ([`TotpError::Replayed`]).
use chrono::{DateTime, Utc};
use totp_rs::{Algorithm, Secret, TOTP};

pub const DIGITS: usize = 6;
pub const STEP_S: i64 = 30;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation for SHA-1).
pub const SECRET_LEN: usize = 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TotpError {
    #[error("动态码应为 6 位数字 / the one-time code must be 6 digits")]
    Malformed,
    #[error("动态码错误 / wrong one-time code")]
    Wrong,
    #[error("动态码已使用过 / this one-time code was already used; wait for the next one")]
    Replayed,
}

/// The step (30 s slot since the Unix epoch) `now` falls in.
pub fn step_of(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(STEP_S)
}

fn totp(secret: &[u8], digits: usize) -> TOTP {
    TOTP::new_unchecked(Algorithm::SHA1, digits, 0, STEP_S as u64, secret.to_vec())
}

/// The code of `step` with `digits` digits.
pub fn code_at_step(secret: &[u8], digits: usize, step: i64) -> String {
    // Steps before 1970 do not occur; clamp rather than wrap.
    let t = step.max(0) as u64 * STEP_S as u64;
    totp(secret, digits).generate(t)
}

/// The 6-digit code for the instant `now`.
pub fn code(secret: &[u8], now: DateTime<Utc>) -> String {
    code_at_step(secret, DIGITS, step_of(now))
}

/// Check `presented` at `now` (±1 step) for a user whose last accepted step
/// was `last_step`. Ok: the step that matched, to be stored as the new last
/// step. Spaces in the code are ignored (apps show `123 456`).
pub fn verify(
    secret: &[u8],
    presented: &str,
    now: DateTime<Utc>,
    last_step: Option<i64>,
) -> Result<i64, TotpError> {
    let code: String = presented.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::Malformed);
    }
    let now_step = step_of(now);
    let mut matched = None;
    // All three candidates are computed and compared in constant time, so the
    // time taken says nothing about which one matched.
    for step in [now_step - 1, now_step, now_step + 1] {
        if crate::csrf::tokens_equal(&code, &code_at_step(secret, DIGITS, step)) {
            matched = Some(step);
        }
    }
    let step = matched.ok_or(TotpError::Wrong)?;
    match last_step {
        Some(last) if step <= last => Err(TotpError::Replayed),
        _ => Ok(step),
    }
}

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    use rand::RngCore;
    let mut b = vec![0u8; SECRET_LEN];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// The secret as authenticator apps take it typed in: base32 without padding.
pub fn secret_base32(secret: &[u8]) -> String {
    match Secret::Raw(secret.to_vec()).to_encoded() {
        Secret::Encoded(s) => s.trim_end_matches('=').to_string(),
        Secret::Raw(_) => String::new(),
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `otpauth://` URI an authenticator app scans (Key Uri Format).
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_S}",
        percent_encode(issuer),
        percent_encode(account),
        secret_base32(secret),
        percent_encode(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(unix: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(unix, 0).unwrap()
    }

    /// RFC 6238 appendix B, SHA-1 rows (8 digits, the 20-byte ASCII secret).
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, want) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(code_at_step(secret, 8, t / STEP_S), want, "T = {t}");
        }
        // The 6-digit code is the last six digits of the same truncation.
        assert_eq!(code(secret, at(59)), "287082");
    }

    #[test]
    fn accepts_one_step_of_drift_and_no_more() {
        let s = b"12345678901234567890";
        let now = at(1111111111);
        let step = step_of(now);
        for d in [-1, 0, 1] {
            let c = code_at_step(s, DIGITS, step + d);
            assert_eq!(verify(s, &c, now, None), Ok(step + d), "drift {d}");
        }
        for d in [-2, 2] {
            let c = code_at_step(s, DIGITS, step + d);
            assert_eq!(verify(s, &c, now, None), Err(TotpError::Wrong), "drift {d}");
        }
    }

    #[test]
    fn replay_refused() {
        let s = b"12345678901234567890";
        let now = at(2000000000);
        let c = code(s, now);
        let step = verify(s, &c, now, None).unwrap();
        // Same code again, even 10 s later within the same step or the next.
        assert_eq!(verify(s, &c, now, Some(step)), Err(TotpError::Replayed));
        assert_eq!(
            verify(s, &c, at(2000000000 + 25), Some(step)),
            Err(TotpError::Replayed)
        );
        // An older code after a newer one was used: refused too.
        let older = code_at_step(s, DIGITS, step - 1);
        assert_eq!(verify(s, &older, now, Some(step)), Err(TotpError::Replayed));
        // The next step's code is fine.
        let next = at(2000000000 + 30);
        assert_eq!(verify(s, &code(s, next), next, Some(step)), Ok(step + 1));
    }

    #[test]
    fn malformed_codes() {
        let s = b"12345678901234567890";
        for bad in ["", "12345", "1234567", "12a456", "１２３４５６"] {
            assert_eq!(
                verify(s, bad, at(59), None),
                Err(TotpError::Malformed),
                "{bad}"
            );
        }
        let c = code(s, at(59));
        let spaced = format!("{} {}", &c[..3], &c[3..]);
        assert!(verify(s, &spaced, at(59), None).is_ok());
    }

    #[test]
    fn uri_and_base32() {
        assert_eq!(
            secret_base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let u = otpauth_uri(b"12345678901234567890", "waihu", "李 四");
        assert!(u.starts_with("otpauth://totp/waihu:%E6%9D%8E%20%E5%9B%9B?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=waihu"), "{u}");
        assert_eq!(new_secret().len(), SECRET_LEN);
    }
}
