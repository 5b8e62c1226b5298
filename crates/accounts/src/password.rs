//! Password hashes: argon2id (RustCrypto `argon2`, its default parameters:
//! 19 MiB, 2 passes, 1 lane, the OWASP minimum) as PHC strings.
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The shortest password accepted.
pub const MIN_LEN: usize = 10;
/// The longest (argon2 takes anything; a cap keeps a request from asking for
/// a megabyte to be hashed).
pub const MAX_LEN: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("密码至少 {MIN_LEN} 个字符 / the password must have at least {MIN_LEN} characters (it has {0})")]
    TooShort(usize),
    #[error("密码过长 / the password is longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("hashing the password: {0}")]
    Hash(String),
}

/// Whether `password` may be set as a new password.
pub fn check_new(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(PasswordError::TooShort(n));
    }
    if password.len() > MAX_LEN {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// The argon2id PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check_new(password)?;
    hash_unchecked(password)
}

fn hash_unchecked(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc`. A malformed PHC string
/// (a damaged row) matches nothing.
pub fn verify(phc: &str, password: &str) -> bool {
    if password.len() > MAX_LEN {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, made once per process: a sign-in for a user
/// that does not exist verifies against it, so it costs what a wrong password
/// costs and the answer cannot tell the two apart.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        // Hashing cannot fail with the default parameters and a generated salt;
        // if it ever did, a constant PHC string still costs a parse (and never
        // verifies).
        hash_unchecked(&crate::new_token()).unwrap_or_else(|_| "$argon2id$v=19$invalid".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify(&h, "correct horse battery"));
        assert!(!verify(&h, "correct horse batterY"));
        assert!(!verify("not a phc string", "correct horse battery"));
        // Two hashes of one password differ (random salt).
        assert_ne!(h, hash("correct horse battery").unwrap());
    }

    #[test]
    fn short_passwords_refused() {
        assert_eq!(check_new("123456789"), Err(PasswordError::TooShort(9)));
        assert!(check_new("1234567890").is_ok());
        // Counted in characters: ten Chinese characters are enough.
        assert!(check_new("一二三四五六七八九十").is_ok());
        assert!(hash("short").is_err());
    }

    #[test]
    fn dummy_hash_verifies_nothing_plausible() {
        assert!(dummy_hash().starts_with("$argon2id$"));
        assert!(!verify(dummy_hash(), "password123"));
    }
}
