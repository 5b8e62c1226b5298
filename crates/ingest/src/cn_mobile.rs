//! Fast path for mainland-China mobile numbers, the bulk of every CN import.
//!
//! `phonenumber` validates with regular expressions over its metadata, which
//! costs ~15 µs a number. For an 11-digit `1[3-9]…` number that cost buys
//! nothing new per row: China's mobile plan is fixed-length and the metadata's
//! mobile pattern (`1740[0-5]\d{6}|1(?:[38]\d|4[57]|[59][0-35-9]|6[25-7]|7[0-35-8])\d{8}`
//! in metadata 9.0.33) never looks past the 5th digit, and no other number
//! type of CN starts with `1[3-9]`, so validity is a function of the first
//! five digits. We ask `phonenumber` once per 5-digit prefix and remember the answer
//! (thread-local, so the rayon workers never contend). A property test checks
//! this agrees with `phonenumber` on random numbers.
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static VALID_PREFIX: RefCell<HashMap<u32, bool>> = RefCell::new(HashMap::new());
}

/// `None`: not a CN mobile shape, use the general path. `Some(Ok((e164,
/// national)))` or `Some(Err(()))` when `phonenumber` says the prefix is invalid.
pub(crate) fn normalize(
    default_region: phonenumber::country::Id,
    raw: &str,
) -> Option<Result<(String, String), ()>> {
    let mut digits = [0u8; 16];
    let mut n = 0usize;
    let mut plus = false;
    for (i, b) in raw.bytes().enumerate() {
        match b {
            b'0'..=b'9' => {
                if n == digits.len() {
                    return None;
                }
                digits[n] = b;
                n += 1;
            }
            b'+' if i == 0 => plus = true,
            b' ' | b'-' | b'(' | b')' | b'.' => {}
            _ => return None,
        }
    }
    let d = &digits[..n];
    let national: &[u8] = match (plus, n) {
        (false, 11) if default_region == phonenumber::country::Id::CN => d,
        (true, 13) if d.starts_with(b"86") => &d[2..],
        (false, 15) if d.starts_with(b"0086") => &d[4..],
        _ => return None,
    };
    if national[0] != b'1' || !(b'3'..=b'9').contains(&national[1]) {
        return None;
    }
    let national = std::str::from_utf8(national).ok()?;
    let prefix: u32 = national[..5].parse().ok()?;
    let valid = VALID_PREFIX.with(|cache| {
        if let Some(v) = cache.borrow().get(&prefix) {
            return *v;
        }
        let v = phonenumber::parse(Some(phonenumber::country::Id::CN), national)
            .map(|p| phonenumber::is_valid(&p))
            .unwrap_or(false);
        cache.borrow_mut().insert(prefix, v);
        v
    });
    Some(if valid {
        Ok((format!("+86{national}"), national.to_string()))
    } else {
        Err(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slow(raw: &str) -> Option<String> {
        let p = phonenumber::parse(Some(phonenumber::country::Id::CN), raw).ok()?;
        phonenumber::is_valid(&p).then(|| p.format().mode(phonenumber::Mode::E164).to_string())
    }

    #[test]
    fn shapes() {
        let cn = phonenumber::country::Id::CN;
        assert_eq!(
            normalize(cn, "138 1234 5678"),
            Some(Ok(("+8613812345678".into(), "13812345678".into())))
        );
        assert_eq!(
            normalize(cn, "+86 138-1234-5678").map(|r| r.map(|x| x.0)),
            Some(Ok("+8613812345678".into()))
        );
        assert_eq!(
            normalize(cn, "008613812345678").map(|r| r.map(|x| x.0)),
            Some(Ok("+8613812345678".into()))
        );
        assert_eq!(
            normalize(cn, "010 1234 5678"),
            None,
            "fixed lines take the general path"
        );
        assert_eq!(normalize(cn, "+1 415 555 0123"), None);
        assert_eq!(normalize(phonenumber::country::Id::US, "13812345678"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn agrees_with_phonenumber(second in 3u8..=9, rest in 0u64..1_000_000_000) {
            let raw = format!("1{second}{rest:09}");
            let fast = normalize(phonenumber::country::Id::CN, &raw).expect("CN mobile shape").ok().map(|x| x.0);
            prop_assert_eq!(fast, slow(&raw), "{}", raw);
        }
    }
}
