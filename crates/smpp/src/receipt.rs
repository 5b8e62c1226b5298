//! SMSC delivery receipts: the de-facto text format of SMPP 3.4 Appendix B
//! (`id:IIII sub:SSS dlvr:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
//! err:E text:...`), with the `receipted_message_id` and `message_state` TLVs taking
//! precedence when the SMSC sends them. Field order and case vary between SMSCs, so the
//! parser looks fields up by key.

use crate::pdu::{tag, Sm};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptState {
    Delivered,
    Expired,
    Deleted,
    Undeliverable,
    Accepted,
    Unknown,
    Rejected,
    Enroute,
    Other(String),
}

impl ReceiptState {
    fn from_stat(s: &str) -> ReceiptState {
        match s.to_ascii_uppercase().as_str() {
            "DELIVRD" | "DELIVERED" => ReceiptState::Delivered,
            "EXPIRED" => ReceiptState::Expired,
            "DELETED" => ReceiptState::Deleted,
            "UNDELIV" | "UNDELIVERABLE" => ReceiptState::Undeliverable,
            "ACCEPTD" | "ACCEPTED" => ReceiptState::Accepted,
            "UNKNOWN" => ReceiptState::Unknown,
            "REJECTD" | "REJECTED" => ReceiptState::Rejected,
            "ENROUTE" => ReceiptState::Enroute,
            other => ReceiptState::Other(other.to_string()),
        }
    }
    fn from_message_state(v: u8) -> Option<ReceiptState> {
        Some(match v {
            1 => ReceiptState::Enroute,
            2 => ReceiptState::Delivered,
            3 => ReceiptState::Expired,
            4 => ReceiptState::Deleted,
            5 => ReceiptState::Undeliverable,
            6 => ReceiptState::Accepted,
            7 => ReceiptState::Unknown,
            8 => ReceiptState::Rejected,
            _ => return None,
        })
    }
    /// Whether the message reached its final state and it was not delivered.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            ReceiptState::Expired
                | ReceiptState::Deleted
                | ReceiptState::Undeliverable
                | ReceiptState::Rejected
                | ReceiptState::Unknown
        )
    }
    pub fn as_stat(&self) -> &str {
        match self {
            ReceiptState::Delivered => "DELIVRD",
            ReceiptState::Expired => "EXPIRED",
            ReceiptState::Deleted => "DELETED",
            ReceiptState::Undeliverable => "UNDELIV",
            ReceiptState::Accepted => "ACCEPTD",
            ReceiptState::Unknown => "UNKNOWN",
            ReceiptState::Rejected => "REJECTD",
            ReceiptState::Enroute => "ENROUTE",
            ReceiptState::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The message id the SMSC returned in submit_sm_resp.
    pub message_id: String,
    pub state: ReceiptState,
    pub error: Option<String>,
    pub submit_date: Option<String>,
    pub done_date: Option<String>,
}

/// Parses a receipt from the text alone.
pub fn parse_text(text: &str) -> Option<Receipt> {
    let id = field(text, "id:")?;
    let stat = field(text, "stat:")?;
    Some(Receipt {
        message_id: id.to_string(),
        state: ReceiptState::from_stat(stat),
        error: field(text, "err:").map(str::to_string),
        submit_date: field(text, "submit date:").map(str::to_string),
        done_date: field(text, "done date:").map(str::to_string),
    })
}

/// Parses the receipt a deliver_sm carries (TLVs first, then the text).
pub fn from_deliver_sm(sm: &Sm) -> Option<Receipt> {
    let text = String::from_utf8_lossy(&sm.short_message);
    let mut r = parse_text(&text);
    let tlv_id = sm
        .tlv(tag::RECEIPTED_MESSAGE_ID)
        .map(|v| String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or(v)).into_owned())
        .filter(|s| !s.is_empty());
    let tlv_state = sm
        .tlv(tag::MESSAGE_STATE)
        .and_then(|v| v.first().copied())
        .and_then(ReceiptState::from_message_state);
    match (&mut r, tlv_id) {
        (Some(r), Some(id)) => r.message_id = id,
        (None, Some(id)) => {
            r = Some(Receipt {
                message_id: id,
                state: tlv_state.clone()?,
                error: None,
                submit_date: None,
                done_date: None,
            })
        }
        _ => {}
    }
    if let (Some(r), Some(s)) = (&mut r, tlv_state) {
        r.state = s;
    }
    r
}

/// The value after `key` (case-insensitive), up to the next space. Keys are matched only
/// at the start or after a space, so `id:` does not match inside `sub:` values.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(key) {
        let at = from + i;
        if at == 0 || lower.as_bytes()[at - 1] == b' ' {
            let rest = &text[at + key.len()..];
            let end = rest.find(' ').unwrap_or(rest.len());
            return Some(&rest[..end]);
        }
        from = at + key.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_standard_text_parses() {
        let r = parse_text("id:1a2b3c sub:001 dlvr:001 submit date:2612031200 done date:2612031201 stat:DELIVRD err:000 text:您好").unwrap();
        assert_eq!(r.message_id, "1a2b3c");
        assert_eq!(r.state, ReceiptState::Delivered);
        assert_eq!(r.error.as_deref(), Some("000"));
        assert_eq!(r.done_date.as_deref(), Some("2612031201"));
    }

    #[test]
    fn case_and_order_vary() {
        let r = parse_text("ID:77 STAT:UNDELIV ERR:005").unwrap();
        assert_eq!(r.message_id, "77");
        assert!(r.state.is_failure());
        assert!(parse_text("hello world").is_none());
    }

    proptest! {
        #[test]
        fn parsing_any_text_never_panics(s in "\\PC{0,200}") {
            let _ = parse_text(&s);
        }
    }
}
