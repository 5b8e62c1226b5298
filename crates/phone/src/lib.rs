//! One phone number to E.164.
//!
//! Its own crate because two layers need it and neither should pull in the
//! other: `waihu-ingest` normalises every CSV row (with a fast path of its own
//! for Chinese mobiles in front), and the API server normalises the numbers
//! it is given (do-not-call entries, lookups) without any CSV machinery.
//! `phonenumber` (regexes over libphonenumber's metadata) is too heavy for
//! `waihu-core`, which every crate, sans-IO cores included, depends on.
//!
//! Architecture invariant: pure — a string and a default region in, a number
//! or a reason out; no I/O, no panics on any input.

/// Normalise one phone number to E.164 (for DNC entries, lookups, the API).
/// Returns the number and its region, or a reason it is not valid.
pub fn normalize_phone(raw: &str, default_region: &str) -> Result<(String, String), String> {
    let region: phonenumber::country::Id = default_region
        .trim()
        .to_uppercase()
        .parse()
        .map_err(|_| format!("unknown region '{default_region}'"))?;
    let raw = raw.trim();
    let parsed = phonenumber::parse(Some(region), raw)
        .map_err(|e| format!("'{raw}' is not a phone number ({e})"))?;
    if !phonenumber::is_valid(&parsed) {
        return Err(format!(
            "'{raw}' is not a valid number for region {}",
            region.as_ref()
        ));
    }
    let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
    let reg = parsed
        .country()
        .id()
        .map_or_else(|| "ZZ".to_string(), |id| id.as_ref().to_string());
    Ok((e164, reg))
}

/// The national form of an E.164 number, digits only, as a carrier dialled from inside
/// the country expects it: `+8613800138000` → `13800138000`, `+861012345678` →
/// `01012345678` (trunk prefix 0 for landlines), `+12015550123` → `2015550123`.
pub fn national_digits(e164: &str) -> Result<String, String> {
    let raw = e164.trim();
    let parsed = phonenumber::parse(None, raw)
        .map_err(|e| format!("'{raw}' is not an E.164 number ({e})"))?;
    let national = parsed
        .format()
        .mode(phonenumber::Mode::National)
        .to_string();
    let digits: String = national.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return Err(format!("'{raw}' has no national form"));
    }
    Ok(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_forms() {
        assert_eq!(national_digits("+8613800138000").unwrap(), "13800138000");
        assert_eq!(national_digits("+861012345678").unwrap(), "01012345678");
        assert_eq!(national_digits("+12015550123").unwrap(), "2015550123");
        assert!(national_digits("hello").is_err());
    }

    #[test]
    fn normalises_or_says_why() {
        assert_eq!(
            normalize_phone("138 1234 5678", "cn"),
            Ok(("+8613812345678".into(), "CN".into()))
        );
        assert_eq!(
            normalize_phone("+1 202-555-0123", "CN").map(|r| r.1),
            Ok("US".into())
        );
        assert!(normalize_phone("12", "CN").is_err());
        assert!(normalize_phone("13812345678", "XX")
            .unwrap_err()
            .contains("unknown region"));
    }
}
