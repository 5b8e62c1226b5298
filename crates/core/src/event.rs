//! The append-only event vocabulary. Every state change of a contact or a call
//! is one [`Event`]; KPIs, funnels, the audit trail, compliance checks and
//! crash recovery are all derived from these. Variants are only ever added,
//! never changed, because old rows must keep deserialising.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CallId, CallOutcome, CampaignId, CustomerId, PhoneIndex};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<CampaignId>,
    /// Correlates all events of one call attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallId>,
    pub kind: EventKind,
}

/// What happened. Serialised as `{"type": "...", ...fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A customer row was created by an import or the API.
    CustomerCreated {
        source: String,
        /// The consent the row gave (absent: the row said nothing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        consent: Option<bool>,
    },
    /// An existing customer (same phone) was updated by a re-import.
    CustomerUpdated {
        source: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        consent: Option<bool>,
    },
    /// Somebody saw a phone number or name in clear.
    PiiRevealed {
        actor: String,
        field: String,
        reason: String,
    },
    /// A number was put on a do-not-call list (`scope`: `global` or a campaign name).
    DncAdded {
        phone: PhoneIndex,
        scope: String,
        reason: String,
    },
    DncRemoved {
        phone: PhoneIndex,
        scope: String,
    },
    /// A dial was placed. `local_time` is the callee's wall-clock time at `at`
    /// as the scheduler saw it, `tz` the zone it used (IANA name).
    AttemptStarted {
        phone: PhoneIndex,
        tz: String,
        local_time: String,
        caller_id: Option<String>,
        channel: String,
    },
    /// The telephony result of an attempt.
    AttemptEnded {
        outcome: CallOutcome,
        sip_status: Option<u16>,
        duration_s: f64,
    },
    /// The business result of a conversation (from the dialog engine).
    ConversationEnded {
        outcome: String,
        level: Option<String>,
        path: Vec<String>,
    },
    /// An answered call found no free agent (predictive pacing) and was dropped.
    CallAbandoned {
        phone: PhoneIndex,
    },
    /// The callee asked to be called back at a time.
    CallbackRequested {
        when: DateTime<Utc>,
    },
    /// A campaign changed state (`created`, `started`, `paused`, `stopped`, `finished`).
    CampaignState {
        state: String,
        /// Who asked (an API caller, a CLI user, a node); absent in logs written before it
        /// was recorded, and where the store keeps it on the campaign row instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        actor: Option<String>,
    },
    /// A message on another channel (`sms`, `push`) was sent.
    MessageSent {
        channel: String,
        template: String,
    },
    /// An outgoing message (`sms`, `push`) was handed to its sender, committed before the
    /// gateway sees it; logged once per message. Like `attempt_started` for calls, it is
    /// what the compliance checker verifies message quiet hours and caps against:
    /// `local_time` is the recipient's wall-clock time at `at` as the gate saw it, `tz` the
    /// zone it used.
    MessageSubmitted {
        message: i64,
        phone: PhoneIndex,
        tz: String,
        local_time: String,
        channel: String,
        template: String,
    },
    /// One callee turn of a live call as the bot understood it. The words
    /// themselves are personal data and live sealed in the store's call
    /// transcript, not here; this is what funnels and heat maps need.
    CallTurn {
        seq: u32,
        /// Script state the turn was heard in.
        state: String,
        intent: String,
        confidence: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emotion: Option<String>,
        #[serde(default)]
        barge_in: bool,
        /// End of the callee's speech → first audio of the bot's reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        latency_ms: Option<f64>,
    },
    /// Segmentation rules were applied to every customer: how many each
    /// segment now holds (`unsegmented`: no rule matched and no default).
    SegmentsApplied {
        rules: String,
        counts: std::collections::BTreeMap<String, u64>,
        unsegmented: u64,
    },
    /// A voiceprint change or decision (`action`: `enrolled`, `erased`,
    /// `verified`, `watch_added`, `watch_alert`). Never the embedding, which
    /// is personal data and lives sealed in the store. `score`: the cosine a
    /// decision was made on; `detail`: the verdict or the watchlist label.
    Voiceprint {
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        score: Option<f32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Who or what answered, as the call's answering-machine detection
    /// decided (`verdict`: `human`, `machine`, `announcement`, `silence`;
    /// `reason`: the evidence). `decided_ms`: media time from answer to the
    /// first decision; `final_ms`: to the one the call acted on last.
    /// `announcement`: the carrier announcement's kind (`vacant`, `suspended`,
    /// `powered_off`, `unreachable`, `busy`, `sit`); `message_left`: the
    /// script's voicemail message was said after the beep.
    CallAnalysed {
        verdict: String,
        reason: String,
        decided_ms: u64,
        final_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        announcement: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        beep_end_ms: Option<u64>,
        #[serde(default)]
        message_left: bool,
    },
    /// The script asked for a human (转人工) in `queue`; the caller starts waiting.
    TransferRequested {
        queue: String,
    },
    /// An agent's phone was rung for the waiting caller, `wait_ms` into the wait.
    TransferOffered {
        queue: String,
        agent: String,
        wait_ms: u64,
    },
    /// The agent answered; the caller is bridged after the whisper. `wait_ms`:
    /// the caller's queue wait until the answer.
    TransferAnswered {
        queue: String,
        agent: String,
        wait_ms: u64,
    },
    /// The caller left the queue without an agent (`reason`: `timeout`,
    /// `all_paused`, `no_agent`, `unknown_queue`, `caller_hung_up`); a callback
    /// is offered unless the caller hung up.
    TransferAbandoned {
        queue: String,
        reason: String,
        wait_ms: u64,
    },
    /// A blind transfer (REFER) of the callee to `target` (the script's `transfer:
    /// {number}`): `succeeded` once the transferee's NOTIFY settled it (`None`: the call
    /// ended first), `settled_ms` from the REFER, `progress` each report in order.
    TransferReferred {
        target: String,
        succeeded: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settled_ms: Option<u64>,
        #[serde(default)]
        progress: Vec<String>,
    },
    /// What an agent's screen-pop shows of a call handed to `queue`, written with
    /// `transfer_requested`: the customer's name masked (张*), the script path so
    /// far, the callee's intents and last emotion, and the whisper's words.
    TransferScreen {
        queue: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer: Option<String>,
        #[serde(default)]
        path: Vec<String>,
        #[serde(default)]
        intents: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emotion: Option<String>,
        summary: String,
    },
    /// An agent's state changed (`available`, `ringing`, `on_call`, `wrap_up`,
    /// `paused`), as the running ACD saw it.
    AgentState {
        agent: String,
        state: String,
    },
    /// What the agent recorded about a call after it (a disposition code such as
    /// `resolved`, and an optional note).
    Disposition {
        agent: String,
        disposition: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A supervisor asked to listen to a live call (the audit: who asked, and
    /// the softphone the call's audio is sent to).
    ListenRequested {
        supervisor: String,
        actor: String,
    },
    /// The supervisor's softphone answered: from now on it hears both parties.
    ListenStarted {
        supervisor: String,
    },
    /// The listen-in leg ended (the call ended, or the supervisor hung up);
    /// 0 s when the softphone never answered.
    ListenEnded {
        supervisor: String,
        listened_s: f64,
    },
    /// A script was saved from the console: who saved it, its version number
    /// (1 for the first saved version), the SHA-256 of the new text and of the
    /// text it replaced, and how many lines were added and removed.
    ScriptSaved {
        name: String,
        actor: String,
        version: u32,
        sha256: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<String>,
        added: u32,
        removed: u32,
    },
    // personal-data rights
    /// A customer was erased (PIPL 删除权 / GDPR art. 17): their data key was
    /// destroyed and their row deleted. The counts say what became unreadable
    /// or was removed; `on_dnc` that the number stays on a do-not-call list.
    CustomerErased {
        actor: String,
        reason: String,
        calls: u64,
        turns: u64,
        recordings: u64,
        messages: u64,
        voiceprints: u64,
        on_dnc: bool,
    },
    /// The master key was rotated: `data_keys` customer keys and the vault
    /// root re-wrapped; the checks are the keys' public fingerprints.
    MasterKeyRotated {
        actor: String,
        data_keys: u64,
        old_check: String,
        new_check: String,
    },
    /// The retention policy removed recordings and transcripts of calls that
    /// ended before the given times.
    RetentionApplied {
        actor: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recordings_before: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transcripts_before: Option<String>,
        recordings: u64,
        transcripts: u64,
    },
    // accounts
    /// A user signed in with a password (and a one-time code when enrolled).
    UserSignedIn {
        user: String,
        /// Whether a TOTP code was checked.
        totp: bool,
    },
    /// A sign-in was refused. `user` is the name given (it may not exist);
    /// `reason` is `bad_credentials`, `totp_required`, `totp_wrong`,
    /// `totp_replayed`, `locked` or `disabled`.
    UserSignInFailed {
        user: String,
        reason: String,
    },
    /// Too many failures in a row: the account is locked until `until`.
    UserLocked {
        user: String,
        failures: u32,
        until: DateTime<Utc>,
    },
    /// A user signed out (the session ended before it expired).
    UserSignedOut {
        user: String,
    },
}

impl EventKind {
    /// The `type` tag, for indexing and filtering.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::CustomerCreated { .. } => "customer_created",
            EventKind::CustomerUpdated { .. } => "customer_updated",
            EventKind::PiiRevealed { .. } => "pii_revealed",
            EventKind::CustomerErased { .. } => "customer_erased",
            EventKind::RetentionApplied { .. } => "retention_applied",
            EventKind::MasterKeyRotated { .. } => "master_key_rotated",
            EventKind::DncAdded { .. } => "dnc_added",
            EventKind::DncRemoved { .. } => "dnc_removed",
            EventKind::AttemptStarted { .. } => "attempt_started",
            EventKind::AttemptEnded { .. } => "attempt_ended",
            EventKind::ConversationEnded { .. } => "conversation_ended",
            EventKind::CallAbandoned { .. } => "call_abandoned",
            EventKind::CallbackRequested { .. } => "callback_requested",
            EventKind::CampaignState { .. } => "campaign_state",
            EventKind::MessageSent { .. } => "message_sent",
            EventKind::MessageSubmitted { .. } => "message_submitted",
            EventKind::SegmentsApplied { .. } => "segments_applied",
            EventKind::CallTurn { .. } => "call_turn",
            EventKind::Voiceprint { .. } => "voiceprint",
            EventKind::CallAnalysed { .. } => "call_analysed",
            EventKind::TransferRequested { .. } => "transfer_requested",
            EventKind::TransferOffered { .. } => "transfer_offered",
            EventKind::TransferAnswered { .. } => "transfer_answered",
            EventKind::TransferAbandoned { .. } => "transfer_abandoned",
            EventKind::TransferReferred { .. } => "transfer_referred",
            EventKind::TransferScreen { .. } => "transfer_screen",
            EventKind::AgentState { .. } => "agent_state",
            EventKind::Disposition { .. } => "disposition",
            EventKind::ListenRequested { .. } => "listen_requested",
            EventKind::ListenStarted { .. } => "listen_started",
            EventKind::ListenEnded { .. } => "listen_ended",
            EventKind::ScriptSaved { .. } => "script_saved",
            // accounts
            EventKind::UserSignedIn { .. } => "user_signed_in",
            EventKind::UserSignInFailed { .. } => "user_sign_in_failed",
            EventKind::UserLocked { .. } => "user_locked",
            EventKind::UserSignedOut { .. } => "user_signed_out",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_has_type_tag_and_round_trips() {
        let ev = Event {
            at: DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            customer: Some(CustomerId(7)),
            campaign: None,
            call: Some("c1".into()),
            kind: EventKind::AttemptEnded {
                outcome: CallOutcome::Busy,
                sip_status: Some(486),
                duration_s: 0.0,
            },
        };
        let json = serde_json::to_string(&ev).unwrap();
        assert!(json.contains(r#""type":"attempt_ended""#), "{json}");
        assert!(json.contains(r#""outcome":"busy""#), "{json}");
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ev);
        assert_eq!(ev.kind.type_name(), "attempt_ended");
    }
}
