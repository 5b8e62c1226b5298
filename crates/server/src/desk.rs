//! The agent desk and the supervisor view (issue 17): live agents and queues
//! as the running dialer publishes them to the store, agent state changes
//! (queued in the store; the dialer applies them within a second), the call
//! offered to an agent (its screen-pop), dispositions, and the desk report.
//!
//! Roles: an `agent` key acts for its own agent id only (state, offer,
//! dispositions of calls it was offered); operators and admins supervise
//! (every agent, queues, any agent's offer); the report is for analysts and up.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use chrono::{DateTime, Days, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use waihu_core::{CallId, Event, EventKind};

use crate::api::{midnight, parse_day, J, Q};
use crate::auth::Need;
use crate::auth::{Caller, DeskCaller, Role};
use crate::desk_report::desk_report;
use crate::error::ApiError;
use crate::{AppState, Routes};

/// A snapshot older than this means the dialer is not running (it publishes
/// every 250 ms).
pub const STALE_AFTER_MS: i64 = 3_000;

/// Most events one desk report reads.
pub const REPORT_MAX_EVENTS: i64 = 200_000;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add("GET", "/api/agents", Need::Min(Role::Operator), get(agents))
        .add(
            "POST",
            "/api/agents/{id}/state",
            Need::OwnAgentOr(Role::Operator),
            post(set_state),
        )
        .add(
            "GET",
            "/api/agents/{id}/offer",
            Need::OwnAgentOr(Role::Operator),
            get(offer),
        )
        .add("GET", "/api/queues", Need::Min(Role::Operator), get(queues))
        .add(
            "POST",
            "/api/calls/{id}/disposition",
            Need::OwnAgentOr(Role::Operator),
            post(disposition),
        )
        .add(
            "POST",
            "/api/calls/{id}/listen",
            Need::Min(Role::Operator),
            post(listen),
        )
        .add(
            "GET",
            "/api/reports/desk",
            Need::Min(Role::Analyst),
            get(report),
        )
}

/// The dialer's last snapshot, with `running` false when there is none, the
/// run ended or it is stale.
async fn live(s: &AppState) -> Result<Value, ApiError> {
    let Some((at, body)) = s.store.desk_live().await? else {
        return Ok(json!({"running": false, "published_at": null, "agents": [], "queues": []}));
    };
    let mut v: Value = serde_json::from_str(&body)
        .map_err(|e| ApiError::internal(format!("the desk snapshot is not JSON: {e}")))?;
    let fresh = (Utc::now() - at).num_milliseconds() <= STALE_AFTER_MS;
    let running = fresh && v["running"].as_bool().unwrap_or(false);
    v["running"] = json!(running);
    v["published_at"] = json!(at);
    if !running {
        v["agents"] = json!([]);
        v["queues"] = json!([]);
    }
    Ok(v)
}

async fn agents(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator, "the supervisor view (agents)")?;
    let v = live(&s).await?;
    Ok(Json(json!({
        "running": v["running"],
        "published_at": v["published_at"],
        "agents": v["agents"],
    })))
}

async fn queues(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator, "the supervisor view (queues)")?;
    let v = live(&s).await?;
    Ok(Json(json!({
        "running": v["running"],
        "published_at": v["published_at"],
        "queues": v["queues"],
    })))
}

fn check_agent_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.chars().count() > 64 || id.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "bad_agent_id",
            "agent id: 1 to 64 characters, as in the agents file",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateBody {
    state: String,
}

impl StateBody {
    pub(crate) fn validate(&self) -> Result<&str, ApiError> {
        match self.state.as_str() {
            s @ ("available" | "paused") => Ok(s),
            other => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_state",
                format!("state: '{other}' is not available or paused (ringing, on_call and wrap_up follow the calls)"),
            )),
        }
    }
}

async fn set_state(
    State(s): State<AppState>,
    caller: DeskCaller,
    Path(id): Path<String>,
    J(b): J<StateBody>,
) -> Result<Response, ApiError> {
    check_agent_id(&id)?;
    caller.may_act_for(&id, "setting an agent's state")?;
    let state = b.validate()?;
    let v = live(&s).await?;
    if !v["running"].as_bool().unwrap_or(false) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "desk_not_running",
            "no dialing run with agents is live (waihu run --agents ...); states are kept by the running dialer",
        ));
    }
    let known = v["agents"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x["id"] == json!(id)));
    if !known {
        return Err(ApiError::not_found(
            "no_such_agent",
            format!("the running dialer has no agent '{id}'; see the agents file"),
        ));
    }
    let request = s
        .store
        .agent_state_request(&id, state, &caller.actor, Utc::now())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"request": request, "agent": id, "state": state})),
    )
        .into_response())
}

/// Where the offered call stands for `agent`: `ringing`, `on_call` (answered by
/// this agent), `ended` (over after this agent answered: time for the
/// disposition), `missed` (rang out or went to someone else), `abandoned`
/// (the caller left or gave up first).
pub fn offer_status(events: &[(i64, Event)], agent: &str) -> Option<(usize, &'static str)> {
    let at = events.iter().rposition(
        |(_, e)| matches!(&e.kind, EventKind::TransferOffered { agent: a, .. } if a == agent),
    )?;
    let mut status = "ringing";
    for (_, e) in &events[at + 1..] {
        status = match (&e.kind, status) {
            (EventKind::TransferAnswered { agent: a, .. }, "ringing") if a == agent => "on_call",
            (EventKind::TransferAnswered { .. }, "ringing") => "missed",
            (EventKind::TransferOffered { .. }, "ringing") => "missed",
            (EventKind::TransferAbandoned { .. }, "ringing") => "abandoned",
            (EventKind::AttemptEnded { .. }, "ringing") => "abandoned",
            (EventKind::AttemptEnded { .. }, "on_call") => "ended",
            // Hung up during the whisper: offered to the next agent.
            (EventKind::TransferOffered { .. }, "on_call") => "ended",
            (_, s) => s,
        };
    }
    Some((at, status))
}

async fn offer(
    State(s): State<AppState>,
    caller: DeskCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_agent_id(&id)?;
    caller.may_act_for(&id, "reading an agent's offered call")?;
    // The agent's own live state (null: no run with this agent is live).
    let state = live(&s).await?["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == json!(id)).cloned());
    let Some((call, events)) = s.store.desk_offer(&id).await? else {
        return Ok(Json(json!({"agent": id, "state": state, "offer": null})));
    };
    let Some((at, status)) = offer_status(&events, &id) else {
        return Ok(Json(json!({"agent": id, "state": state, "offer": null})));
    };
    let (offered_at, queue, wait_ms) = match &events[at].1.kind {
        EventKind::TransferOffered { queue, wait_ms, .. } => {
            (events[at].1.at, queue.clone(), *wait_ms)
        }
        _ => unreachable!("offer_status points at a transfer_offered"),
    };
    let screen = events[..at].iter().rev().find_map(|(_, e)| match &e.kind {
        k @ EventKind::TransferScreen { .. } => Some(k.clone()),
        _ => None,
    });
    let disposition = events.iter().rev().find_map(|(_, e)| match &e.kind {
        EventKind::Disposition {
            agent,
            disposition,
            note,
        } if agent == &id => Some(json!({"disposition": disposition, "note": note, "at": e.at})),
        _ => None,
    });
    // The words go to the agent the call is handed to, and to supervisors: once
    // per key and call a `pii_revealed` event (reason `screen_pop`) says who
    // read them, before they leave. The customer's name only masked, the number never.
    let detail = s.store.call_detail(&call).await?;
    let seen = events.iter().any(|(_, e)| {
        matches!(&e.kind, EventKind::PiiRevealed { actor, field, .. }
            if actor == &caller.actor && field == "transcript")
    });
    if let (Some(d), false) = (&detail, seen) {
        if !d.turns.is_empty() {
            s.store
                .append_event(&Event {
                    at: Utc::now(),
                    customer: d.summary.customer,
                    campaign: d.summary.campaign,
                    call: Some(call.clone()),
                    kind: EventKind::PiiRevealed {
                        actor: caller.actor.clone(),
                        field: "transcript".into(),
                        reason: "screen_pop".into(),
                    },
                })
                .await?;
        }
    }
    let turns: Vec<Value> = match detail {
        Some(d) => d
            .turns
            .iter()
            .map(|t| {
                json!({"seq": t.seq, "speaker": t.speaker, "state": t.state, "at": t.at,
                       "text": t.text, "intent": t.intent, "emotion": t.emotion})
            })
            .collect(),
        None => Vec::new(),
    };
    let (customer, path, intents, emotion, summary) = match screen {
        Some(EventKind::TransferScreen {
            customer,
            path,
            intents,
            emotion,
            summary,
            ..
        }) => (customer, path, intents, emotion, Some(summary)),
        _ => (None, Vec::new(), Vec::new(), None, None),
    };
    Ok(Json(json!({
        "agent": id,
        "state": state,
        "offer": {
            "call_id": call,
            "status": status,
            "queue": queue,
            "offered_at": offered_at,
            "wait_ms": wait_ms,
            "customer": customer,
            "path": path,
            "intents": intents,
            "emotion": emotion,
            "summary": summary,
            "transcript": turns,
            "disposition": disposition,
        }
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DispositionBody {
    disposition: String,
    #[serde(default)]
    note: Option<String>,
    /// Supervisors only: the agent the disposition is for (default: the agent
    /// who answered the call).
    #[serde(default)]
    agent: Option<String>,
}

impl DispositionBody {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let d = self.disposition.trim();
        if d.is_empty() || d.chars().count() > 64 || d.chars().any(char::is_control) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_disposition",
                "disposition: 1 to 64 characters, e.g. resolved, callback, escalated",
            ));
        }
        if let Some(n) = &self.note {
            if n.chars().count() > 500 {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_note",
                    "note: at most 500 characters (it is stored in the event log: no personal data)",
                ));
            }
        }
        if let Some(a) = &self.agent {
            check_agent_id(a)?;
        }
        Ok(())
    }
}

async fn disposition(
    State(s): State<AppState>,
    caller: DeskCaller,
    Path(id): Path<String>,
    J(b): J<DispositionBody>,
) -> Result<Response, ApiError> {
    b.validate()?;
    let call = CallId(id.clone());
    let events = s.store.call_events(&call).await?;
    let Some((_, first)) = events.first() else {
        return Err(ApiError::not_found(
            "no_such_call",
            format!("no call '{id}'; list them at /api/calls"),
        ));
    };
    let answered_by: Vec<&str> = events
        .iter()
        .filter_map(|(_, e)| match &e.kind {
            EventKind::TransferAnswered { agent, .. } => Some(agent.as_str()),
            _ => None,
        })
        .collect();
    let agent =
        match (caller.role, &caller.agent, &b.agent) {
            (Role::Agent, _, Some(_)) => return Err(ApiError::forbidden(
                "not_your_agent",
                "agent: an agent key records dispositions for its own agent only; drop the field",
            )),
            (Role::Agent, Some(own), None) => {
                if !answered_by.contains(&own.as_str()) {
                    return Err(ApiError::forbidden(
                        "not_your_call",
                        format!("agent '{own}' did not answer call '{id}'"),
                    ));
                }
                own.clone()
            }
            (r, _, named) if r >= Role::Operator => match named {
                Some(a) => a.clone(),
                None => answered_by.last().map(|a| a.to_string()).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "no_agent",
                        format!("no agent answered call '{id}'; name one in `agent`"),
                    )
                })?,
            },
            _ => {
                return Err(ApiError::forbidden(
                    "forbidden",
                    "a disposition needs the answering agent's key or the operator role",
                ))
            }
        };
    let event = Event {
        at: Utc::now(),
        customer: first.customer,
        campaign: first.campaign,
        call: Some(call),
        kind: EventKind::Disposition {
            agent: agent.clone(),
            disposition: b.disposition.trim().to_string(),
            note: b
                .note
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from),
        },
    };
    let event_id = s.store.append_event(&event).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"call_id": id, "agent": agent, "disposition": b.disposition.trim(), "event": event_id})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenBody {
    /// The supervisor's softphone: `sip:user@host:port`.
    uri: String,
}

/// A SIP URI a listen-in leg can be placed to (the dialer checks it again).
fn listen_uri_ok(uri: &str) -> bool {
    match uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
    {
        Some(r) => {
            uri.len() <= 256
                && !r.is_empty()
                && !r.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// Supervisor listen-in: the request is an audited event in the call's log;
/// the run bridging the call places a leg to `uri` that hears both parties
/// (`listen_started` / `listen_ended` follow). 202: asked, not yet listening.
async fn listen(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    J(b): J<ListenBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator, "listening in to a call")?;
    let uri = b.uri.trim();
    if !listen_uri_ok(uri) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_uri",
            "uri: the supervisor's softphone as a SIP URI, e.g. sip:supervisor@10.0.0.9:5060",
        ));
    }
    let call = CallId(id.clone());
    let events = s.store.call_events(&call).await?;
    let Some((_, first)) = events.first() else {
        return Err(ApiError::not_found(
            "no_such_call",
            format!("no call '{id}'; list them at /api/calls"),
        ));
    };
    let bridged = events
        .iter()
        .any(|(_, e)| matches!(e.kind, EventKind::TransferAnswered { .. }));
    let over = events
        .iter()
        .any(|(_, e)| matches!(e.kind, EventKind::AttemptEnded { .. }));
    if !bridged || over {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_bridged",
            format!(
                "call '{id}' is not bridged to an agent now; listen-in is for live agent calls"
            ),
        ));
    }
    let event = Event {
        at: Utc::now(),
        customer: first.customer,
        campaign: first.campaign,
        call: Some(call),
        kind: EventKind::ListenRequested {
            supervisor: uri.to_string(),
            actor: caller.actor.clone(),
        },
    };
    let event_id = s.store.append_event(&event).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"call_id": id, "uri": uri, "event": event_id, "actor": caller.actor})),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ReportQ {
    from: Option<String>,
    to: Option<String>,
}

async fn report(
    State(s): State<AppState>,
    caller: Caller,
    Q(q): Q<ReportQ>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Analyst, "the desk report")?;
    let now = Utc::now();
    let to = match &q.to {
        Some(t) => parse_day("to", t)?,
        None => now.date_naive(),
    };
    let from = match &q.from {
        Some(f) => parse_day("from", f)?,
        None => to.checked_sub_days(Days::new(6)).unwrap_or(to),
    };
    if from > to || (to - from).num_days() > 366 {
        return Err(ApiError::bad_request(
            "bad_range",
            format!("from ({from}) must not be after to ({to}), at most a year apart"),
        ));
    }
    let start = midnight(from);
    let end: DateTime<Utc> = midnight(to.checked_add_days(Days::new(1)).unwrap_or(to));
    let events = s.store.desk_events(start, end, REPORT_MAX_EVENTS).await?;
    let r = desk_report(&events, end.min(now));
    let mut v = serde_json::to_value(&r).map_err(|e| ApiError::internal(e.to_string()))?;
    v["from"] = json!(from);
    v["to"] = json!(to);
    v["truncated"] = json!(events.len() as i64 >= REPORT_MAX_EVENTS);
    Ok(Json(v))
}
