//! The OpenAPI 3.1 document, written by hand (serde_json) from one table of
//! operations. A test checks that every route the router serves is in it and
//! nothing else is.
use serde_json::{json, Map, Value};

struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    /// Least role needed; None = no key needed.
    role: Option<&'static str>,
    params: &'static [P],
    body: Option<fn() -> Value>,
    csv: bool,
}

/// (name, location, JSON type, description)
type P = (&'static str, &'static str, &'static str, &'static str);

const RANGE: &[P] = &[
    ("from", "query", "string", "First day, YYYY-MM-DD (UTC for KPIs, callee-local for the heat map). Default: 29 days before `to`."),
    ("to", "query", "string", "Last day, inclusive. Default: the day of the newest finished attempt."),
    ("campaign", "query", "integer", "Only this campaign id."),
    ("format", "query", "string", "json (default), csv, xlsx or pdf."),
];

fn dnc_body() -> Value {
    json!({"type": "object", "required": ["phone"], "additionalProperties": false, "properties": {
        "phone": {"type": "string", "description": "Number, with country code or in the region's format."},
        "scope": {"type": "string", "default": "global", "description": "global or a campaign name."},
        "reason": {"type": "string"},
        "region": {"type": "string", "default": "CN", "description": "Region for numbers without a country code."}}})
}

fn erase_body() -> Value {
    json!({"type": "object", "required": ["reason", "confirm"], "additionalProperties": false, "properties": {
        "reason": {"type": "string", "minLength": 1, "maxLength": 500, "description": "The request's reason or reference, recorded on the audit chain."},
        "confirm": {"type": "boolean", "description": "Must be true: erasure cannot be undone."}}})
}

fn webhook_body() -> Value {
    json!({"type": "object", "required": ["url"], "additionalProperties": false, "properties": {
        "url": {"type": "string", "format": "uri"},
        "events": {"type": "array", "items": {"type": "string"}, "description": "Event types to deliver (empty: all)."},
        "secret": {"type": "string", "minLength": 16, "description": "HMAC key; generated and returned once when omitted."}}})
}

fn key_body() -> Value {
    json!({"type": "object", "required": ["name", "role"], "additionalProperties": false, "properties": {
        "name": {"type": "string"},
        "role": {"type": "string", "enum": ["admin", "supervisor", "operator", "analyst", "agent"]},
        "agent": {"type": "string", "description": "Role agent only (and required): the agent id the key acts as."}}})
}

fn login_body() -> Value {
    json!({"type": "object", "required": ["user", "password"], "additionalProperties": false, "properties": {
        "user": {"type": "string", "maxLength": 64},
        "password": {"type": "string"},
        "totp": {"type": "string", "description": "The 6-digit code, required once the user is enrolled (`waihu user totp NAME`)."}}})
}

fn campaign_body() -> Value {
    json!({"type": "object", "required": ["spec"], "additionalProperties": false, "description": "Or send the campaign YAML itself with Content-Type: application/yaml.", "properties": {
        "spec": {"type": "string", "description": "The campaign file (YAML, as in examples/campaign.yaml and docs/campaign.md)."}}})
}

const CAMPAIGN_ID: &[P] = &[("id", "path", "integer", "Campaign id.")];
const CAMPAIGN_FILTER: &[P] = &[
    ("campaign", "query", "integer", "Only this campaign id."),
    (
        "format",
        "query",
        "string",
        "json (default), csv, xlsx or pdf.",
    ),
];

const MESSAGES_REPORT: &[P] = &[
    ("campaign", "query", "integer", "Only this campaign id."),
    (
        "window_days",
        "query",
        "integer",
        "Conversion attribution window in days after a delivered message (1..365, default 7).",
    ),
    (
        "format",
        "query",
        "string",
        "json (default), csv, xlsx or pdf.",
    ),
];

const AGENT_ID: &[P] = &[("id", "path", "string", "Agent id (from the agents file).")];
const CLUSTER_CAMPAIGN: &[P] = &[
    ("id", "path", "integer", "Campaign id."),
    ("action", "path", "string", "start, pause or stop."),
];
const CLUSTER_NODE: &[P] = &[
    (
        "name",
        "path",
        "string",
        "Node name (waihu run --node NAME).",
    ),
    ("action", "path", "string", "drain or undrain."),
];
const CALL_ID: &[P] = &[("id", "path", "string", "Call id.")];
const DAY_RANGE: &[P] = &[
    (
        "from",
        "query",
        "string",
        "First day, YYYY-MM-DD (UTC). Default: 6 days before `to`.",
    ),
    (
        "to",
        "query",
        "string",
        "Last day, inclusive. Default: today (UTC).",
    ),
];

fn state_body() -> Value {
    json!({"type": "object", "required": ["state"], "additionalProperties": false, "properties": {
        "state": {"type": "string", "enum": ["available", "paused"]}}})
}

fn listen_body() -> Value {
    json!({"type": "object", "required": ["uri"], "additionalProperties": false, "properties": {
        "uri": {"type": "string", "maxLength": 256, "description": "The supervisor's softphone, e.g. sip:supervisor@10.0.0.9:5060."}
    }})
}

fn disposition_body() -> Value {
    json!({"type": "object", "required": ["disposition"], "additionalProperties": false, "properties": {
        "disposition": {"type": "string", "minLength": 1, "maxLength": 64, "description": "e.g. resolved, callback, escalated."},
        "note": {"type": "string", "maxLength": 500, "description": "Stored in the event log in clear: no personal data."},
        "agent": {"type": "string", "description": "Operators and admins only: the agent (default: who answered)."}}})
}

const SCRIPT_NAME: &[P] = &[(
    "name",
    "path",
    "string",
    "Script file stem, e.g. order_confirmation.zh.",
)];

fn rules_body() -> Value {
    json!({"type": "object", "required": ["rules"], "additionalProperties": false, "properties": {
        "rules": {"type": "string", "description": "The segment rule file (YAML, as examples/segments.yaml)."},
        "samples": {"type": "integer", "default": 3, "maximum": 20, "description": "Masked sample customers per segment."},
        "today": {"type": "string", "description": "Evaluate as of this date (YYYY-MM-DD; default today, UTC)."}}})
}

fn script_body() -> Value {
    json!({"type": "object", "required": ["yaml"], "additionalProperties": false, "properties": {
        "yaml": {"type": "string", "description": "The script (YAML, docs/script.md)."}}})
}

fn voice_body() -> Value {
    json!({"type": "object", "required": ["yaml", "sdp"], "additionalProperties": false, "properties": {
        "yaml": {"type": "string", "description": "The script (YAML, docs/script.md)."},
        "sdp": {"type": "string", "description": "The browser's SDP offer."},
        "vars": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Customer variables; missing ones take the script's examples."},
        "codec": {"type": "string", "enum": ["opus", "g711"], "description": "opus (default): Opus when offered, else G.711; g711: G.711 only. The bot hears 8 kHz either way."}}})
}

fn layout_body() -> Value {
    json!({"type": "object", "required": ["positions"], "additionalProperties": false, "properties": {
        "positions": {"type": "object", "maxProperties": 500, "description": "State name → the top-left corner of its box on the canvas.",
            "additionalProperties": {"type": "object", "required": ["x", "y"], "additionalProperties": false, "properties": {
                "x": {"type": "number", "minimum": -100000, "maximum": 100000},
                "y": {"type": "number", "minimum": -100000, "maximum": 100000}}}}}})
}

fn edit_body() -> Value {
    let name = json!({"type": "string"});
    let op = |op: &str, required: &[&str], props: Value| {
        let mut props = props;
        props["op"] = json!({"type": "string", "enum": [op]});
        let mut req = vec!["op"];
        req.extend_from_slice(required);
        json!({"type": "object", "required": req, "additionalProperties": false, "properties": props})
    };
    json!({"type": "object", "required": ["yaml", "edit"], "additionalProperties": false, "properties": {
    "yaml": {"type": "string", "description": "The script being edited."},
    "edit": {"oneOf": [
        op("connect", &["from", "to"], json!({"from": name, "to": name, "intent": {"type": ["string", "null"]}})),
        op("retarget", &["from", "rule", "to"], json!({"from": name, "rule": {"type": "integer", "minimum": 0}, "to": name})),
        op("disconnect", &["from", "rule"], json!({"from": name, "rule": {"type": "integer", "minimum": 0}})),
        op("add_state", &["name", "say"], json!({"name": name, "say": name, "end": {"type": ["string", "null"]}})),
        op("rename_state", &["from", "to"], json!({"from": name, "to": name})),
        op("remove_state", &["name"], json!({"name": name})),
    ]}}})
}

fn save_body() -> Value {
    json!({"type": "object", "required": ["yaml"], "additionalProperties": false, "properties": {
        "yaml": {"type": "string"},
        "base": {"type": "string", "description": "sha256 of the text the edit started from (from /source); omit to create a new script."}}})
}

fn forecast_body() -> Value {
    json!({"type": "object", "required": ["spec", "deadline"], "additionalProperties": false, "properties": {
        "spec": {"type": "string", "description": "The campaign file (YAML)."},
        "start": {"type": "string", "description": "RFC 3339, or a wall time in the campaign's zone (2026-12-08T09:00). Default: now."},
        "deadline": {"type": "string", "description": "Same forms; a date alone means its end. At most 31 days after start."},
        "runs": {"type": "integer", "default": 5, "minimum": 1, "maximum": 20}}})
}

fn test_body() -> Value {
    json!({"type": "object", "required": ["yaml"], "additionalProperties": false, "properties": {
        "yaml": {"type": "string", "description": "The script under test."},
        "cases": {"type": "string", "description": "The case file (YAML, docs/scripts.md)."},
        "name": {"type": "string", "description": "Without `cases`: use this script's stored case file."}}})
}

fn chat_body() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "yaml": {"type": "string", "description": "Start: the script text."},
        "vars": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Start: customer variables (missing ones take the script's examples)."},
        "session": {"type": "string", "description": "A turn: the session id the start returned."},
        "line": {"type": "string", "maxLength": 2000, "description": "A turn: the callee's words, /silence, /hangup or /dtmf 1#."}}})
}

fn prompt_audio_body() -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["yaml", "state"], "properties": {
        "yaml": {"type": "string", "description": "The script text (saved or not)."},
        "state": {"type": "string", "description": "The state whose prompt to speak."},
        "vars": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Customer variables (missing ones take the script's examples)."}}})
}

const OPS: &[Op] = &[
    Op { method: "GET", path: "/", summary: "The dashboard (HTML, embedded; 中文 with an English switch).", role: None, params: &[], body: None, csv: false },
    Op { method: "GET", path: "/api/openapi.json", summary: "This document.", role: None, params: &[], body: None, csv: false },
    Op { method: "GET", path: "/login", summary: "The sign-in page (HTML, embedded; 中文 with an English switch).", role: None, params: &[], body: None, csv: false },
    Op { method: "POST", path: "/api/auth/login", summary: "Sign in with a user account: sets the waihu_session cookie (HttpOnly, SameSite=Strict, Secure over TLS) and returns {user, role, csrf_token, expires_at}. Wrong user and wrong password get the same 401 bad_credentials; 5 failures in a row lock the account for 15 min; 10 attempts per minute per client address (429 rate_limited). 401 totp_required / totp_wrong / totp_replayed for enrolled users.", role: None, params: &[], body: Some(login_body), csv: false },
    Op { method: "POST", path: "/api/auth/logout", summary: "End the cookie's session (X-CSRF-Token required like any change) and clear the cookie.", role: None, params: &[], body: None, csv: false },
    Op { method: "GET", path: "/api/auth/me", summary: "The caller: its tenant; for a session its user, role, csrf_token and expires_at; for a key its actor and role.", role: Some("agent"), params: &[], body: None, csv: false },
    Op { method: "GET", path: "/api/me", summary: "The caller's tenant and role (and for an agent key, its agent id).", role: Some("agent"), params: &[], body: None, csv: false },
    Op { method: "GET", path: "/api/cluster", summary: "Multi-node deployment (WAIHU_DATABASE_URL): nodes (state, last heartbeat, open calls, leases) and shared campaigns (state, channels in use of channels, cps, pending, done), the calls open on every node (live) and the ended attempts per campaign, node and outcome (outcomes); {\"configured\": false} on a single machine.", role: Some("analyst"), params: &[], body: None, csv: false },
    Op { method: "GET", path: "/api/cluster/stream", summary: "Server-sent events, the merged live view of every node: a `cluster` event (the body of /api/cluster plus `events`, the merged log's new events with the node that logged each, `events_skipped` past 100 per snapshot, and `last_event`) when the stream opens, about 150 ms after any node commits an event (PostgreSQL NOTIFY), and at least every 5 s. 404 no_cluster on a single machine; at most 32 streams at once (503 too_many_streams).", role: Some("analyst"), params: &[("max_s", "query", "integer", "Seconds before the stream ends (default 600, max 3600)."), ("after", "query", "integer", "Send the events after this id first (a reconnecting client's last_event).")], body: None, csv: false },
    Op { method: "GET", path: "/api/cluster/kpis", summary: "The KPIs of /api/kpis over every node of the cluster (same definitions, same shape, CSV/XLSX too), from the hourly cells a trigger on the merged log keeps: attempts and outcomes, connect rate, average handle time, conversations, conversion rate and intention levels of all nodes' calls. 404 no_cluster on a single machine.", role: Some("analyst"), params: RANGE, body: None, csv: true },
    Op { method: "POST", path: "/api/cluster/campaigns/{id}/{action}", summary: "action start, pause or stop: the shared campaign's state on every node (they hear it within a second). 404 no_cluster on a single machine, no_such_campaign, no_such_action.", role: Some("operator"), params: CLUSTER_CAMPAIGN, body: None, csv: false },
    Op { method: "POST", path: "/api/cluster/nodes/{name}/{action}", summary: "action drain (the node dials nothing new, hands its contacts to the others, lets its calls finish and stops) or undrain. 404 when no such node is up (drain) or draining (undrain).", role: Some("operator"), params: CLUSTER_NODE, body: None, csv: false },
    Op { method: "GET", path: "/api/overview", summary: "Counts: customers, DNC entries, segments, events per type, webhooks, data span.", role: Some("analyst"), params: &[], body: None, csv: false },
    Op {
        method: "GET",
        path: "/api/customers",
        summary: "Customers in id order, phone and name masked. reveal=true (operator, admin) shows them in clear and appends one pii_revealed event per customer first; analysts get 403.",
        role: Some("analyst"),
        params: &[
            ("after", "query", "integer", "Cursor: customers with a larger id (the previous page's next_after)."),
            ("limit", "query", "integer", "Rows per page (default 50, max 1000; CSV up to 100000)."),
            ("reveal", "query", "boolean", "Show personal data in clear (audited; operator or admin)."),
            ("reason", "query", "string", "Why, recorded with the reveal."),
            ("format", "query", "string", "json (default), csv, xlsx or pdf."),
        ],
        body: None,
        csv: true,
    },
    Op {
        method: "GET",
        path: "/api/customers/{id}",
        summary: "One customer with their latest events; masking and reveal as for the list.",
        role: Some("analyst"),
        params: &[
            ("id", "path", "integer", "Customer id."),
            ("reveal", "query", "boolean", "Show personal data in clear (audited; operator or admin)."),
            ("reason", "query", "string", "Why, recorded with the reveal."),
        ],
        body: None,
        csv: false,
    },
    Op {
        method: "GET",
        path: "/api/customers/{id}/export",
        summary: "个人信息查阅: everything held about one customer, opened (fields, consent, do-not-call scopes, every call with its turns' words, messages, voiceprint count, every event about them). A pii_revealed event (field export, the reason) is appended first. 410 for an erased customer.",
        role: Some("operator"),
        params: &[
            ("id", "path", "integer", "Customer id."),
            ("reason", "query", "string", "The request's reason or reference (required), recorded on the audit chain."),
        ],
        body: None,
        csv: false,
    },
    Op {
        method: "POST",
        path: "/api/customers/{id}/erase",
        summary: "个人信息删除: erase one customer by crypto-shredding (their data key destroyed, their row, voiceprints and recordings deleted; calls, counts and the audit chain kept). Irreversible: the body must say confirm: true. The number stays on any do-not-call list (the answer lists the scopes). 410 if already erased.",
        role: Some("admin"),
        params: &[("id", "path", "integer", "Customer id.")],
        body: Some(erase_body),
        csv: false,
    },
    Op {
        method: "POST",
        path: "/api/customers/import",
        summary: "Import customers from the CSV body (UTF-8 or GBK, Chinese or English headers), as `waihu customers import` does; answers with the same report as its --json line. Re-importing a number updates the customer; unchanged rows are skipped. Rejected rows are written to rejects_file under the data directory. Bodies up to 64 MiB.",
        role: Some("admin"),
        params: &[
            ("name", "query", "string", "File name for the report and the rejects file (default upload.csv)."),
            ("region", "query", "string", "Region for numbers without a country code (default CN)."),
            ("batch", "query", "integer", "Rows per transaction (default 5000)."),
        ],
        body: None,
        csv: false,
    },
    Op { method: "GET", path: "/api/segments", summary: "Stored segments with their rules and customer counts.", role: Some("analyst"), params: &[("format", "query", "string", "json (default), csv, xlsx or pdf.")], body: None, csv: true },
    Op {
        method: "GET",
        path: "/api/dnc",
        summary: "Do-not-call entries, numbers masked.",
        role: Some("analyst"),
        params: &[
            ("scope", "query", "string", "Only this scope (global or a campaign name)."),
            ("after", "query", "integer", "Cursor: skip this many entries (the previous page's next_after)."),
            ("limit", "query", "integer", "Rows per page (default 100)."),
            ("format", "query", "string", "json (default), csv, xlsx or pdf."),
        ],
        body: None,
        csv: true,
    },
    Op { method: "POST", path: "/api/dnc", summary: "Put a number on the do-not-call list (201 added, 200 already listed).", role: Some("operator"), params: &[], body: Some(dnc_body), csv: false },
    Op {
        method: "DELETE",
        path: "/api/dnc/{phone}",
        summary: "Take a number off a do-not-call list (404 if it is not on it).",
        role: Some("operator"),
        params: &[
            ("phone", "path", "string", "The number (URL-encode the +)."),
            ("scope", "query", "string", "global (default) or a campaign name."),
            ("region", "query", "string", "Region for numbers without a country code (default CN)."),
        ],
        body: None,
        csv: false,
    },
    Op {
        method: "GET",
        path: "/api/events",
        summary: "The event log: newest first (cursor `before`), or oldest first after a cursor (`after`).",
        role: Some("analyst"),
        params: &[
            ("type", "query", "string", "Only this event type (e.g. attempt_ended, pii_revealed)."),
            ("after", "query", "integer", "Oldest first, ids greater than this."),
            ("before", "query", "integer", "Newest first, ids smaller than this."),
            ("limit", "query", "integer", "Rows per page (default 50, max 1000; CSV up to 100000)."),
            ("format", "query", "string", "json (default), csv, xlsx or pdf."),
        ],
        body: None,
        csv: true,
    },
    Op {
        method: "GET",
        path: "/api/kpis",
        summary: "Campaign KPIs over UTC days, totals and a per-day series: attempts (finished), connects (answered or voicemail), connect rate 接通率 = connects/attempts, outcome breakdown, abandon rate = call_abandoned/answered, average handle time = connected seconds/connects, conversion rate 转化率 = conversations with a conversion outcome/connects, intention levels. Definitions: docs/kpis.md (the same code computes what `waihu demo` and `waihu run` print).",
        role: Some("analyst"),
        params: RANGE,
        body: None,
        csv: true,
    },
    Op {
        method: "GET",
        path: "/api/heatmap",
        summary: "Answer rate by the callee's local weekday (1 = Monday) × hour: 168 cells of attempts, connects and connects/attempts.",
        role: Some("analyst"),
        params: RANGE,
        body: None,
        csv: true,
    },
    Op { method: "GET", path: "/api/campaigns", summary: "Campaigns with their state, the states they may move to, the dates they may dial on (active: {from, to} from their file, or null), stored and live call counts.", role: Some("analyst"), params: &[("format", "query", "string", "json (default), csv, xlsx or pdf.")], body: None, csv: true },
    Op { method: "POST", path: "/api/campaigns", summary: "Create a campaign from its YAML file (validated; problems come back as 422 invalid_campaign with line and column). State: created, logged as a campaign_state event. The same name again returns the existing campaign (200); a changed file replaces its spec.", role: Some("operator"), params: &[], body: Some(campaign_body), csv: false },
    Op { method: "GET", path: "/api/campaigns/{id}", summary: "One campaign with its spec and the scripts its calls used.", role: Some("analyst"), params: CAMPAIGN_ID, body: None, csv: false },
    Op { method: "POST", path: "/api/campaigns/{id}/start", summary: "created, paused or finished → running (a campaign_state event; the runtime picks it up). 409 invalid_transition from other states.", role: Some("operator"), params: CAMPAIGN_ID, body: None, csv: false },
    Op { method: "POST", path: "/api/campaigns/{id}/pause", summary: "running → paused: no new dials; calls in progress finish. 409 invalid_transition from other states.", role: Some("operator"), params: CAMPAIGN_ID, body: None, csv: false },
    Op { method: "POST", path: "/api/campaigns/{id}/stop", summary: "created, running or paused → stopped (final). 409 invalid_transition otherwise.", role: Some("operator"), params: CAMPAIGN_ID, body: None, csv: false },
    Op { method: "GET", path: "/api/scripts", summary: "Script files in <data_dir>/scripts/ (name = file stem): title, language, states, transitions, calls; files that do not load carry their error.", role: Some("analyst"), params: &[], body: None, csv: false },
    Op { method: "GET", path: "/api/scripts/{name}", summary: "A script's state graph (nodes with layer from the start state and traffic entered/continued/dropped/completed; edges with their trigger or end outcome).", role: Some("analyst"), params: &[("name", "path", "string", "Script file stem, e.g. order_confirmation.en."), ("campaign", "query", "integer", "Traffic of this campaign only.")], body: None, csv: false },
    Op {
        method: "GET",
        path: "/api/calls",
        summary: "Calls newest first, the customer's number masked.",
        role: Some("analyst"),
        params: &[
            ("campaign", "query", "integer", "Only this campaign id."),
            ("before", "query", "string", "Cursor: calls older than this call id (the previous page's next_before)."),
            ("limit", "query", "integer", "Rows per page (default 50, max 1000; CSV up to 100000)."),
            ("format", "query", "string", "json (default), csv, xlsx or pdf."),
        ],
        body: None,
        csv: true,
    },
    Op { method: "GET", path: "/api/calls/live", summary: "Calls in progress (dialing, ringing, talking) with their current script state and last emotion; numbers masked.", role: Some("analyst"), params: &[], body: None, csv: false },
    Op { method: "GET", path: "/api/calls/live/stream", summary: "Server-sent events: a `live` event with the same body as /api/calls/live every second. The server ends the stream after max_s seconds (reconnect); at most 32 streams at once (503 too_many_streams).", role: Some("analyst"), params: &[("max_s", "query", "integer", "Seconds before the stream ends (default 600, max 3600).")], body: None, csv: false },
    Op {
        method: "GET",
        path: "/api/calls/{id}",
        summary: "One call: status, outcome, path through the script, the transcript turns with state, intent, confidence, emotion, voice features and latency, and the media `quality` (RTP received/lost/late/jitter, the peer's RTCP view of our audio: loss %, jitter, round-trip time; null without media). The words (text) are personal data: null unless reveal=true (operator, admin), which appends a pii_revealed event (field transcript) first; analysts get 403.",
        role: Some("analyst"),
        params: &[
            ("id", "path", "string", "Call id."),
            ("reveal", "query", "boolean", "Include the words (audited; operator or admin)."),
            ("reason", "query", "string", "Why, recorded with the reveal."),
        ],
        body: None,
        csv: false,
    },
    Op {
        method: "GET",
        path: "/api/calls/{id}/recording",
        summary: "The call's stereo recording (audio/wav; left callee, right bot), decrypted. Operator or admin; each playback appends a pii_revealed event (field recording) first; analysts get 403.",
        role: Some("operator"),
        params: &[("id", "path", "string", "Call id."), ("reason", "query", "string", "Why, recorded with the access.")],
        body: None,
        csv: false,
    },
    Op {
        method: "GET",
        path: "/api/reports/funnel",
        summary: "Funnel by script state in path order: per state the calls that entered it, continued to another state, dropped there (the call ended there without a business outcome or with hangup) or completed there; drop rate, reach, and the largest drop (highest drop rate among states with at least 5% of the first state's calls).",
        role: Some("analyst"),
        params: &[
            ("script", "query", "string", "Script name as the calls recorded it (default: the script with most calls)."),
            ("campaign", "query", "integer", "Only this campaign id."),
            ("format", "query", "string", "json (default), csv, xlsx or pdf."),
        ],
        body: None,
        csv: true,
    },
    Op { method: "GET", path: "/api/reports/intents", summary: "Topic heat map: callee intents × script states (turn counts), states in path order, intents by frequency.", role: Some("analyst"), params: CAMPAIGN_FILTER, body: None, csv: true },
    Op { method: "GET", path: "/api/reports/voice", summary: "Callee voice features by customer segment and by UTC hour: turns, average speech rate (syllables/s), volume (dBFS), pitch (Hz), pause ratio, turns per emotion, mean text sentiment and 满意度 (satisfaction = callee turns with sentiment above +0.1 / those above +0.1 or below -0.1; docs/kpis.md); totals over all segments.", role: Some("analyst"), params: CAMPAIGN_FILTER, body: None, csv: true },
    Op { method: "GET", path: "/api/agents", summary: "Supervisor view: the running dialer's agents (id, state available/ringing/on_call/wrap_up/paused, since, for_ms, a pending pause). running=false when no dialing run with agents is live (its snapshot is older than 3 s).", role: Some("operator"), params: &[], body: None, csv: false },
    Op { method: "POST", path: "/api/agents/{id}/state", summary: "Set an agent's state (available or paused): queued in the store, applied by the running dialer within 1 s (a pause of a ringing or talking agent waits for the call's end). The agent's own key, or operator and up. 202; 409 desk_not_running; 404 no_such_agent; 403 not_your_agent.", role: Some("agent"), params: AGENT_ID, body: Some(state_body), csv: false },
    Op { method: "GET", path: "/api/agents/{id}/offer", summary: "The agent's offered call (screen-pop; poll it): call id, status (ringing, on_call, ended, missed, abandoned), queue, wait, the customer's masked name, script path, intents, emotion, the whisper summary, the transcript so far (words, intents, emotion) and the agent's disposition once entered; offer=null before any. The agent's own key, or operator and up.", role: Some("agent"), params: AGENT_ID, body: None, csv: false },
    Op { method: "GET", path: "/api/queues", summary: "Supervisor view: each queue of the running dialer with its waiting callers (call id, since, wait_ms).", role: Some("operator"), params: &[], body: None, csv: false },
    Op { method: "POST", path: "/api/calls/{id}/disposition", summary: "Record a disposition after a handed-over call (a `disposition` event on the call). An agent key: only for a call it answered; operator and up: any call, `agent` defaulting to who answered it. 201 with the event id.", role: Some("agent"), params: CALL_ID, body: Some(disposition_body), csv: false },
    Op { method: "POST", path: "/api/calls/{id}/listen", summary: "Supervisor listen-in (监听) to a call bridged to an agent now: appends an audited `listen_requested` event (who asked, which softphone); the run bridging the call rings `uri` within a second and sends it both parties mixed, neither hearing the supervisor; `listen_started` / `listen_ended` follow in the call's events. 202; 409 not_bridged when the call is not with an agent.", role: Some("operator"), params: CALL_ID, body: Some(listen_body), csv: false },
    Op { method: "GET", path: "/api/reports/desk", summary: "Agent desk report from the event log: per queue the wait distribution (p50/p95/max, buckets ≤5/15/30/60 s/more) and abandon rate (abandoned ÷ answered + abandoned, by reason); per agent offers, answers, talk time (answer → call end), occupancy (ringing + on call + wrap-up ÷ signed in and not paused) and dispositions.", role: Some("analyst"), params: DAY_RANGE, body: None, csv: false },
    Op { method: "GET", path: "/api/webhooks", summary: "Configured webhooks (secrets not shown).", role: Some("admin"), params: &[], body: None, csv: false },
    Op {
        method: "POST",
        path: "/api/webhooks",
        summary: "Add a webhook. New events of the chosen types are POSTed in batches with X-Waihu-Signature: sha256=<hex HMAC-SHA256(secret, body)> and X-Waihu-Timestamp; retried with exponential backoff. The secret is returned once.",
        role: Some("admin"),
        params: &[],
        body: Some(webhook_body),
        csv: false,
    },
    Op { method: "DELETE", path: "/api/webhooks/{id}", summary: "Delete a webhook and its delivery log.", role: Some("admin"), params: &[("id", "path", "integer", "Webhook id.")], body: None, csv: false },
    Op { method: "GET", path: "/api/webhooks/{id}/deliveries", summary: "A webhook's latest deliveries (tries, status, error).", role: Some("admin"), params: &[("id", "path", "integer", "Webhook id.")], body: None, csv: false },
    Op { method: "GET", path: "/api/messages", summary: "Follow-up messages (SMS, push, replies), newest first: channel, template, status, sent and delivery times; never numbers or texts.", role: Some("analyst"), params: &[("campaign", "query", "integer", "Only this campaign id."), ("limit", "query", "integer", "At most this many (default 100; CSV 1,000,000)."), ("format", "query", "string", "json (default), csv, xlsx or pdf.")], body: None, csv: true },
    Op { method: "GET", path: "/api/messages/report", summary: "Messages per campaign, channel and template: queued, sent, delivered, failed, suppressed, unknown, delivery latency p50/p90, conversions attributed last-touch within window_days (default 7); replies and opt-outs per campaign.", role: Some("analyst"), params: MESSAGES_REPORT, body: None, csv: true },
    Op { method: "GET", path: "/api/alerts", summary: "Alerts for the live wall, most severe first, each {code, severity (critical|warning|info), subject, zh, en}: connect_rate_drop (the recent window's connect rate well below the baseline's, with at least 20 and 50 attempts), abandon_rate (above 3% of answered calls), trunk_down, trunk_unregistered, no_trunk_up, node_stopped (open calls but no fresh node status), asr_queue (more utterances waiting than decoders), angry_callers; with both windows' KPIs, live and angry call counts, trunks up and the ASR queue.", role: Some("analyst"), params: &[("recent_min", "query", "integer", "The recent window in minutes (default 15; 1 to 10080)."), ("baseline_min", "query", "integer", "The baseline window before it in minutes (default 120; 1 to 10080).")], body: None, csv: false },
    Op { method: "GET", path: "/wall", summary: "The live wall (实时大屏, HTML, embedded): alerts, live calls with their current node and emotion, connect and abandon rates, trunks, the ASR queue, human queues and agents; refreshed every 2 s.", role: None, params: &[], body: None, csv: false },
    Op { method: "GET", path: "/api/trunks", summary: "Trunk state of the dialing node (from <data_dir>/trunks.json): per trunk up/down, registration, channels in use, calls and failures; `stale` when the node has not written it for 5 s.", role: Some("analyst"), params: &[("format", "query", "string", "json (default), csv, xlsx or pdf.")], body: None, csv: true },
    Op { method: "GET", path: "/api/experiments", summary: "Learning experiments (bandits over script variants) per campaign, state and segment: per variant calls, successes, posterior rate, probability of being best, uplift vs the first variant with a 95% interval.", role: Some("analyst"), params: &[("campaign", "query", "integer", "Only this campaign id."), ("format", "query", "string", "json (default), csv, xlsx or pdf.")], body: None, csv: true },
    Op { method: "GET", path: "/api/keys", summary: "API keys (names, roles; never the keys).", role: Some("admin"), params: &[], body: None, csv: false },
    Op { method: "POST", path: "/api/keys", summary: "Create an API key; the key is returned once (only its SHA-256 is stored).", role: Some("admin"), params: &[], body: Some(key_body), csv: false },
    Op { method: "GET", path: "/console", summary: "The operations console (HTML, embedded): customers upload, segment rules with live preview, script editing with validation, version history and a text chat with the bot.", role: None, params: &[], body: None, csv: false },
    Op { method: "GET", path: "/api/segments/attributes", summary: "Customer attribute names and kinds seen in imports (what segment rules may use).", role: Some("analyst"), params: &[], body: None, csv: false },
    Op { method: "POST", path: "/api/segments/preview", summary: "Check segment rules (YAML) against the stored attributes and count customers per segment with masked samples; nothing is stored. Rule errors answer 200 with ok=false and errors [{line, column, rule, message}].", role: Some("analyst"), params: &[], body: Some(rules_body), csv: false },
    Op { method: "POST", path: "/api/segments/apply", summary: "As preview, then store every customer's segment and the rule definitions (a segments_applied event). 409 no_customers on an empty store.", role: Some("operator"), params: &[], body: Some(rules_body), csv: false },
    Op { method: "POST", path: "/api/scripts/validate", summary: "Check a script's YAML: ok with a summary, or ok=false with errors [{line, column, path, message}] (200 either way); with the text's outline (graph: states and transitions as written, a missing goto target marked) whenever the text is YAML.", role: Some("analyst"), params: &[], body: Some(script_body), csv: false },
    Op { method: "POST", path: "/api/scripts/edit", summary: "One flow-canvas edit applied to a script's text as a change of a few lines (comments and layout kept): connect {from, to, intent?}, retarget {from, rule, to}, disconnect {from, rule}, add_state {name, say, end?}, rename_state {from, to}, remove_state {name}. Answers the new yaml, the line of the edit and its validation (as /api/scripts/validate); 422 with the reason and line when the edit cannot be made (no_such_state, state_exists, bad_name, no_such_transition, flow_style, not_a_list, yaml, no_states).", role: Some("analyst"), params: &[], body: Some(edit_body), csv: false },
    Op { method: "POST", path: "/api/scripts/chat", summary: "Text chat with a script, as `waihu script chat`: {yaml, vars} starts one (the opening prompt and a session id), {session, line} is a callee turn (words, /silence, /hangup, /dtmf 1#); answers the bot's prompts, actions, what it understood and the end. Sessions idle 30 min expire (404 no_such_chat); at most 32 are kept.", role: Some("analyst"), params: &[], body: Some(chat_body), csv: false },
    Op { method: "POST", path: "/api/scripts/voice", summary: "Voice test over WebRTC: the browser's SDP offer (Opus, else G.711 PCMU/PCMA; ICE-lite answer, one host candidate) is answered and the script's bot (the phone pipeline: VAD, ASR, NLU, dialog, TTS) talks with the browser's microphone. 201 with {id, sdp (the answer), media (host:port), codec (opus, PCMU or PCMA), language}; script errors answer 200 with ok=false and errors; 422 bad_offer or missing_variables; 429 busy (4 at once); 503 speech_unavailable. At most 5 minutes.", role: Some("analyst"), params: &[], body: Some(voice_body), csv: false },
    Op { method: "GET", path: "/api/scripts/voice/{id}", summary: "A voice test so far: notes in order (kind=state with state and emotion; kind=turn with the turn: speaker, text, intent, emotion, latency_ms), ended (null while it runs; then the leg's report and the bot's outcome and per-turn latencies). 404 no_such_session.", role: Some("analyst"), params: &[("id", "path", "string", "Voice test id (from POST /api/scripts/voice).")], body: None, csv: false },
    Op { method: "DELETE", path: "/api/scripts/voice/{id}", summary: "Hang up a voice test (204). 404 no_such_session.", role: Some("analyst"), params: &[("id", "path", "string", "Voice test id (from POST /api/scripts/voice).")], body: None, csv: false },
    Op { method: "POST", path: "/api/scripts/prompt-audio", summary: "Prompt preview (试听): a state's prompt variants rendered with the variables sent (the script's examples for the rest) and spoken in the state's style by the bot's voice (WAIHU_BOT_VOICE), as the callee hears it: per variant its text, length in ms and an 8 kHz WAV data URL. Script errors answer 200 with ok=false and errors [{line, column, path, message}]; 404 no_such_state; 422 no_prompt (a router) or unknown_style; 503 tts_unavailable.", role: Some("analyst"), params: &[], body: Some(prompt_audio_body), csv: false },
    Op { method: "POST", path: "/api/scripts/test", summary: "Run a script's test cases (as `waihu script test`) against the script text sent: the cases sent as `cases`, or the stored <name>.cases.yaml (or <stem>.cases.yaml). Answers passed, failed and per case the path, outcome and failures; script or case-file errors answer ok=false with their positions.", role: Some("analyst"), params: &[], body: Some(test_body), csv: false },
    Op { method: "GET", path: "/api/scripts/{name}/source", summary: "A script's YAML text with its sha256 (the base of a later save) and latest saved version.", role: Some("analyst"), params: SCRIPT_NAME, body: None, csv: false },
    Op { method: "PUT", path: "/api/scripts/{name}", summary: "Save a script (validated first: 422 invalid_script with errors [{line, column, path, message}], nothing saved). base must be the sha256 the editor started from (409 conflict if someone saved since). The version is kept under scripts/.history and a script_saved event records who, the version, both hashes and lines added/removed. 201 when it creates the script.", role: Some("operator"), params: SCRIPT_NAME, body: Some(save_body), csv: false },
    Op { method: "GET", path: "/api/scripts/{name}/layout", summary: "Where the flow canvas draws each state of a saved script ({positions: {state: {x, y}}}, empty when never arranged; states without a position are laid out automatically).", role: Some("analyst"), params: SCRIPT_NAME, body: None, csv: false },
    Op { method: "PUT", path: "/api/scripts/{name}/layout", summary: "Keeps the canvas positions of a saved script's states beside it (not in the YAML: the script's text, versions and audit do not change). 400 bad_state, bad_position or too_many (500); 404 no_such_script.", role: Some("analyst"), params: SCRIPT_NAME, body: Some(layout_body), csv: false },
    Op { method: "GET", path: "/api/scripts/{name}/history", summary: "Who saved which version of a script and when (from the audit log), newest first.", role: Some("analyst"), params: SCRIPT_NAME, body: None, csv: false },
    Op { method: "GET", path: "/api/scripts/{name}/history/{version}", summary: "The text of one saved version (0: the file as it was before the first console save).", role: Some("analyst"), params: &[("name", "path", "string", "Script file stem."), ("version", "path", "integer", "Version number.")], body: None, csv: false },
    Op { method: "POST", path: "/api/campaigns/forecast", summary: "Forecast a campaign before launch: the planner over the stored customer list (as waihu run loads it, history seeding its answer model) in virtual time from start to deadline; answers the share reached, attempts and contacts finished (10th/50th/90th percentile of the runs) by the deadline and per day. Campaign file errors answer 200 with ok=false and errors [{line, column, path, message}].", role: Some("analyst"), params: &[], body: Some(forecast_body), csv: false },
    Op { method: "GET", path: "/api/rejects/{file}", summary: "An import's rejected rows as CSV (the rejects_file the import reported: line, column, reason, then the row).", role: Some("admin"), params: &[("file", "path", "string", "The file name of the import report's rejects_file.")], body: None, csv: true },
    Op { method: "DELETE", path: "/api/keys/{id}", summary: "Revoke an API key.", role: Some("admin"), params: &[("id", "path", "integer", "Key id.")], body: None, csv: false },
];

fn error_response(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The document served at `/api/openapi.json`.
pub fn document() -> Value {
    let mut paths = Map::new();
    // Served only with the `engine` feature (console_engine.rs).
    const ENGINE: [&str; 6] = [
        "/api/scripts/voice",
        "/api/scripts/voice/{id}",
        "/api/scripts/chat",
        "/api/scripts/prompt-audio",
        "/api/scripts/test",
        "/api/campaigns/forecast",
    ];
    for op in OPS {
        if !cfg!(feature = "engine") && ENGINE.contains(&op.path) {
            continue;
        }
        let params: Vec<Value> = op
            .params
            .iter()
            .map(|(name, loc, ty, desc)| json!({"name": name, "in": loc, "required": *loc == "path", "description": desc, "schema": {"type": ty}}))
            .collect();
        let mut ok = json!({"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}});
        if op.csv {
            ok["content"]["text/csv"] = json!({"schema": {"type": "string"}});
        }
        if op.csv && !op.path.starts_with("/api/rejects/") {
            ok["content"]["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"] =
                json!({"schema": {"type": "string", "format": "binary"}});
            ok["content"]["application/pdf"] =
                json!({"schema": {"type": "string", "format": "binary"}});
        }
        if op.path == "/" || op.path == "/console" || op.path == "/wall" {
            ok = json!({"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}});
        }
        if op.path.ends_with("/recording") {
            ok = json!({"description": "WAV audio", "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}});
        }
        if op.path.ends_with("/stream") {
            // One schema per event (OpenAPI 3.2's itemSchema): `event: live`, `data:` a JSON document.
            ok = json!({"description": "An event stream", "content": {"text/event-stream": {"itemSchema": {
                "type": "object", "required": ["data"],
                "properties": {"event": {"type": "string"}, "data": {"type": "string", "contentMediaType": "application/json"}}}}}});
        }
        let state_change = op.path.starts_with("/api/campaigns/{id}/");
        let mut responses = Map::new();
        responses.insert(
            if op.method == "POST" && !state_change {
                "201".into()
            } else {
                "200".into()
            },
            ok,
        );
        responses.insert(
            "400".into(),
            error_response("Bad parameter or body; the message says which and how to fix it"),
        );
        if let Some(role) = op.role {
            responses.insert(
                "401".into(),
                error_response("No key, or an unknown or revoked key"),
            );
            responses.insert(
                "403".into(),
                error_response(&format!(
                    "The key's role is below {role} (or an analyst asked for reveal)"
                )),
            );
        }
        if op.path.contains('{') {
            responses.insert("404".into(), error_response("No such item"));
        }
        if op.body.is_some() {
            responses.insert("422".into(), error_response("A field has a bad value"));
        }
        if state_change {
            responses.insert(
                "409".into(),
                error_response("The campaign cannot make this move from its current state"),
            );
        }
        let mut o = json!({
            "summary": op.summary,
            "operationId": format!("{}{}", op.method.to_lowercase(), op.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": responses,
        });
        match op.role {
            Some(role) => {
                o["security"] = json!([{"bearer": []}, {"apiKey": []}, {"session": []}]);
                o["x-waihu-role"] = json!(role);
            }
            None => o["security"] = json!([]),
        }
        if op.path == "/api/customers/import" {
            o["requestBody"] = json!({"required": true, "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string", "format": "binary"}}}});
            o["responses"]["422"] = error_response("The CSV cannot be read (no header, no phone column); the message names the problem");
        }
        if let Some(b) = op.body {
            o["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": b()}}});
        }
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method.to_lowercase()] = o;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "waihu API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "waihu (外呼) data API. Send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>` (create one with `waihu apikey create --role analyst --name NAME`). Or sign in with a user account (POST /api/auth/login; the waihu_session cookie, and X-CSRF-Token on every request but GET/HEAD). Roles: analyst (read, personal data masked), operator (+ audited reveal, DNC edits, supervising the agent desk), supervisor (what an operator may, for floor supervisors), admin (+ keys, webhooks, imports); agent (bound to one agent id: only /api/me, its own state, its own offered call and dispositions of calls it answered; every other route answers 403 agent_key). Errors are {\"error\": {\"code\", \"message\"}}. An installation with tenants serves each from its own store: name it with the X-Waihu-Tenant header (else the waihu_tenant cookie set at sign-in, else `default`); credentials of one tenant are unknown in another (401).",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "session": {"type": "apiKey", "in": "cookie", "name": "waihu_session", "description": "From POST /api/auth/login. Requests other than GET/HEAD also send X-CSRF-Token (403 csrf_missing / csrf_mismatch)."},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "description": "Stable machine-readable code, e.g. reveal_forbidden"},
                    "message": {"type": "string", "description": "What went wrong and what to do"}}}}},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[tokio::test]
    async fn every_served_route_is_documented_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let key = waihu_privacy_free_key();
        let store = waihu_store::Store::open_with_key(dir.path(), &key)
            .await
            .unwrap();
        let (_router, routes) = crate::app(store, crate::Config::default());
        let served: BTreeSet<(String, String)> = routes
            .iter()
            .map(|r| (r.method.to_lowercase(), r.path.to_string()))
            .collect();
        let doc = super::document();
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        assert_eq!(served, documented);
        assert!(served.len() >= 20, "{served:?}");
        // The role the document states is the one the route declares.
        for r in &routes {
            let op = &doc["paths"][r.path][r.method.to_lowercase()];
            let declared = match r.need {
                crate::auth::Need::Public => None,
                crate::auth::Need::Min(role) => Some(role.as_str()),
                crate::auth::Need::OwnAgentOr(_) => Some("agent"),
            };
            assert_eq!(
                op["x-waihu-role"].as_str(),
                declared,
                "{} {}",
                r.method,
                r.path
            );
        }
    }

    fn waihu_privacy_free_key() -> waihu_privacy::MasterKey {
        waihu_privacy::MasterKey::from_bytes([7; 32])
    }
}
