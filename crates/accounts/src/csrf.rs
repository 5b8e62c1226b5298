//! Comparing a presented secret with the stored one in constant time.
use subtle::ConstantTimeEq;

/// Whether two tokens are equal, in time that depends only on their lengths.
pub fn tokens_equal(presented: &str, stored: &str) -> bool {
    presented.len() == stored.len() && bool::from(presented.as_bytes().ct_eq(stored.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_identical() {
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abd", "abc"));
        assert!(!tokens_equal("ab", "abc"));
        assert!(!tokens_equal("", "abc"));
    }
}
