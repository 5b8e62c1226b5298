use serde::{Deserialize, Serialize};

/// Telephony outcome of one call attempt, as the SIP layer reports it and the
/// campaign engine's retry policy consumes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// 200 OK: the callee (or a machine) picked up.
    Answered,
    /// 486 / 600 Busy.
    Busy,
    /// Rang until the ring timeout (we sent CANCEL), or 408/480.
    NoAnswer,
    /// 603 Decline or other explicit rejection.
    Rejected,
    /// 404 / 484 / 604: the number does not exist.
    InvalidNumber,
    /// 停机: the carrier says the line is suspended (mostly unpaid bills; it
    /// may come back, unlike a vacant number).
    Suspended,
    /// 503 / 502 / 500 from the trunk: try later.
    Congestion,
    /// Carrier announcement "powered off / unreachable" (early media then failure).
    PoweredOff,
    /// Answered by a voicemail system.
    Voicemail,
    /// Transport errors, timeouts without any response, anything else.
    Failed,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 10] = [
        CallOutcome::Answered,
        CallOutcome::Busy,
        CallOutcome::NoAnswer,
        CallOutcome::Rejected,
        CallOutcome::InvalidNumber,
        CallOutcome::Suspended,
        CallOutcome::Congestion,
        CallOutcome::PoweredOff,
        CallOutcome::Voicemail,
        CallOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::Busy => "busy",
            CallOutcome::NoAnswer => "no_answer",
            CallOutcome::Rejected => "rejected",
            CallOutcome::InvalidNumber => "invalid_number",
            CallOutcome::Suspended => "suspended",
            CallOutcome::Congestion => "congestion",
            CallOutcome::PoweredOff => "powered_off",
            CallOutcome::Voicemail => "voicemail",
            CallOutcome::Failed => "failed",
        }
    }

    /// Whether a live person (or machine) was connected.
    pub fn connected(self) -> bool {
        matches!(self, CallOutcome::Answered | CallOutcome::Voicemail)
    }
}

impl std::fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
