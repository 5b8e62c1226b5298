//! The CONNECT handshake's authenticators (CMPP 2.0 and 3.0 §7.4.1–7.4.2) and its
//! timestamp.
//!
//! - AuthenticatorSource = MD5(Source_Addr + 9 zero bytes + shared secret + timestamp),
//!   the timestamp as the 10 characters `MMDDHHMMSS` (the same in both versions);
//! - AuthenticatorISMG = MD5(Status + AuthenticatorSource + shared secret), Status as it is
//!   on the wire: one octet in 2.0, four big-endian octets in 3.0.
//!
//! The caller supplies the time: this module never reads the clock.

use md5::{Digest, Md5};

use crate::pdu::Version;

/// `MMDDHHMMSS` as the Timestamp field carries it (a number: 1205143000). Out-of-range
/// parts are an error, not a wrong authenticator later.
pub fn timestamp(month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<u32> {
    let ok = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 61;
    ok.then(|| (((month * 100 + day) * 100 + hour) * 100 + minute) * 100 + second)
}

/// The timestamp as the 10 characters hashed (leading zero kept: `0105080910`).
pub fn timestamp_text(ts: u32) -> String {
    format!("{ts:010}")
}

pub fn authenticator_source(source_addr: &str, secret: &str, ts: u32) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(source_addr.as_bytes());
    h.update([0u8; 9]);
    h.update(secret.as_bytes());
    h.update(timestamp_text(ts).as_bytes());
    h.finalize().into()
}

pub fn authenticator_ismg(v: Version, status: u32, source: &[u8; 16], secret: &str) -> [u8; 16] {
    let mut h = Md5::new();
    match v {
        // A 2.0 Status never exceeds one octet (the codec refuses to send one that does).
        Version::V2_0 => h.update([status as u8]),
        Version::V3_0 => h.update(status.to_be_bytes()),
    }
    h.update(source);
    h.update(secret.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(12, 5, 14, 30, 0), Some(1205143000));
        assert_eq!(timestamp(1, 5, 8, 9, 10), Some(105080910));
        assert_eq!(timestamp_text(105080910), "0105080910");
        assert_eq!(timestamp(13, 1, 0, 0, 0), None);
        assert_eq!(timestamp(1, 0, 0, 0, 0), None);
        assert_eq!(timestamp(1, 1, 24, 0, 0), None);
    }

    #[test]
    fn authenticator_source_hashes_the_documented_concatenation() {
        // Computed independently: printf '901234\0\0\0\0\0\0\0\0\0secret1205143000' | md5sum
        assert_eq!(
            hex(&authenticator_source("901234", "secret", 1205143000)),
            "3514537566715b0be846059afd23dbe5"
        );
        let src = authenticator_source("901234", "secret", 1205143000);
        assert_ne!(src, authenticator_source("901234", "secreT", 1205143000));
        assert_ne!(src, authenticator_source("901234", "secret", 1205143001));
        assert_ne!(
            authenticator_ismg(Version::V2_0, 0, &src, "secret"),
            authenticator_ismg(Version::V2_0, 3, &src, "secret")
        );
        // Computed independently: the status octet(s), the 16 source octets, the secret:
        // (printf '\0\0\0\0'; printf '%s' 3514537566715b0be846059afd23dbe5 | xxd -r -p;
        //  printf secret) | md5sum — one '\0' for 2.0.
        assert_eq!(
            hex(&authenticator_ismg(Version::V2_0, 0, &src, "secret")),
            "431d373349f317cb4167d0273f058b55"
        );
        assert_eq!(
            hex(&authenticator_ismg(Version::V3_0, 0, &src, "secret")),
            "604e43e298644de944cd595304bdccd1"
        );
    }
}
