//! Local stand-ins for the providers on 127.0.0.1, for tests and benchmarks. Each verifies
//! requests exactly as the provider documents it and records what it accepted and what it
//! refused:
//! - [`aliyun`]: the RPC signature recomputed with the peer's own AccessKey secret,
//!   `AccessKeyId`, `Timestamp` within 15 minutes, `SignatureNonce` never reused, the fixed
//!   parameters (`SignatureMethod`, `SignatureVersion`, `Version`, `Format`), `TemplateParam`
//!   a JSON object; `QuerySendDetails` reports every accepted message delivered (or failed
//!   for numbers in `undeliverable`).
//! - [`twilio`]: HTTP Basic `AccountSid:AuthToken`, `To`/`From`/`Body`; then posts the
//!   message's statuses (`sent`, then `delivered` or `undelivered`) to its `StatusCallback`,
//!   signed with `X-Twilio-Signature` as Twilio does.
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};

use crate::{aliyun as ali, twilio as tw};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id it answered with.
    pub id: String,
    pub to: String,
    /// Twilio: `Body`; Alibaba: `TemplateParam`.
    pub text: String,
    /// Twilio: `From`; Alibaba: `SignName|TemplateCode|OutId`.
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Seen {
    pub accepted: Vec<Accepted>,
    /// Why requests were refused.
    pub refused: Vec<String>,
    nonces: HashSet<String>,
    /// Status callbacks posted and the listener's HTTP status for each.
    pub callbacks: Vec<(String, u16)>,
}

#[derive(Clone)]
struct Shared {
    key_id: String,
    secret: String,
    undeliverable: HashSet<String>,
    seen: Arc<Mutex<Seen>>,
    /// How long to hold the answer after recording a message (a provider that took the
    /// message and answers late: what a kill between submit and commit meets).
    hold: std::time::Duration,
}

pub struct PeerHandle {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl PeerHandle {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn accepted(&self) -> Vec<Accepted> {
        self.seen
            .lock()
            .map(|s| s.accepted.clone())
            .unwrap_or_default()
    }
    pub fn refused(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|s| s.refused.clone())
            .unwrap_or_default()
    }
    pub fn callbacks(&self) -> Vec<(String, u16)> {
        self.seen
            .lock()
            .map(|s| s.callbacks.clone())
            .unwrap_or_default()
    }
}

impl Drop for PeerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn refuse(s: &Shared, why: String) {
    if let Ok(mut g) = s.seen.lock() {
        g.refused.push(why);
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> axum::response::Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

async fn aliyun_handler(State(s): State<Shared>, body: String) -> axum::response::Response {
    let params: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let err = |status: StatusCode, code: &str, msg: &str| {
        refuse(&s, format!("{code}: {msg}"));
        json(
            status,
            serde_json::json!({"Code": code, "Message": msg, "RequestId": "peer"}),
        )
    };
    if get("AccessKeyId").as_deref() != Some(s.key_id.as_str()) {
        return err(
            StatusCode::NOT_FOUND,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        );
    }
    if !ali::verify(&s.secret, "POST", &params) {
        return err(
            StatusCode::BAD_REQUEST,
            "SignatureDoesNotMatch",
            "Specified signature is not matched with our calculation.",
        );
    }
    for (k, want) in [
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("Version", ali::VERSION),
        ("Format", "JSON"),
    ] {
        if get(k).as_deref() != Some(want) {
            return err(
                StatusCode::BAD_REQUEST,
                "MissingParameter",
                &format!("{k} must be {want}"),
            );
        }
    }
    let ts =
        get("Timestamp").and_then(|t| NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%SZ").ok());
    match ts {
        Some(t)
            if (Utc::now() - DateTime::<Utc>::from_naive_utc_and_offset(t, Utc))
                .num_seconds()
                .abs()
                <= 900 => {}
        _ => {
            return err(
                StatusCode::BAD_REQUEST,
                "InvalidTimeStamp.Expired",
                "Timestamp missing or more than 15 minutes away",
            )
        }
    }
    let nonce = get("SignatureNonce").unwrap_or_default();
    let fresh = !nonce.is_empty()
        && s.seen
            .lock()
            .map(|mut g| g.nonces.insert(nonce))
            .unwrap_or(false);
    if !fresh {
        return err(
            StatusCode::BAD_REQUEST,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        );
    }
    match get("Action").as_deref() {
        Some("SendSms") => {
            let (Some(phone), Some(sign), Some(code), Some(param)) = (
                get("PhoneNumbers"),
                get("SignName"),
                get("TemplateCode"),
                get("TemplateParam"),
            ) else {
                return err(
                    StatusCode::BAD_REQUEST,
                    "MissingParameter",
                    "PhoneNumbers, SignName, TemplateCode, TemplateParam",
                );
            };
            if !serde_json::from_str::<serde_json::Value>(&param).is_ok_and(|v| v.is_object()) {
                return err(
                    StatusCode::OK,
                    "isv.INVALID_JSON_PARAM",
                    "TemplateParam is not a JSON object",
                );
            }
            let id = {
                let Ok(mut g) = s.seen.lock() else {
                    return err(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "lock");
                };
                let id = format!("{}^0", 900_619_746_936_498_000u64 + g.accepted.len() as u64);
                g.accepted.push(Accepted {
                    id: id.clone(),
                    to: phone,
                    text: param,
                    detail: format!("{sign}|{code}|{}", get("OutId").unwrap_or_default()),
                });
                id
            };
            json(
                StatusCode::OK,
                serde_json::json!({"Code": "OK", "Message": "OK", "RequestId": "peer", "BizId": id}),
            )
        }
        Some("QuerySendDetails") => {
            let biz = get("BizId").unwrap_or_default();
            let found = s
                .seen
                .lock()
                .ok()
                .and_then(|g| g.accepted.iter().find(|a| a.id == biz).cloned());
            let list = match found {
                Some(a) if s.undeliverable.contains(&a.to) => {
                    serde_json::json!([{"SendStatus": 2, "ErrCode": "MK:0001", "PhoneNum": a.to}])
                }
                Some(a) => {
                    serde_json::json!([{"SendStatus": 3, "ErrCode": "DELIVERED", "PhoneNum": a.to}])
                }
                None => serde_json::json!([]),
            };
            json(
                StatusCode::OK,
                serde_json::json!({"Code": "OK", "Message": "OK", "SmsSendDetailDTOs": {"SmsSendDetailDTO": list}}),
            )
        }
        other => err(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("{other:?}"),
        ),
    }
}

async fn serve(app: axum::Router, seen: Arc<Mutex<Seen>>) -> std::io::Result<PeerHandle> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(PeerHandle { addr, seen, task })
}

/// An Alibaba Cloud SMS endpoint that knows one AccessKey pair.
pub async fn aliyun(
    key_id: &str,
    secret: &str,
    undeliverable: &[&str],
) -> std::io::Result<PeerHandle> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = Shared {
        key_id: key_id.into(),
        secret: secret.into(),
        undeliverable: undeliverable.iter().map(|u| u.to_string()).collect(),
        seen: seen.clone(),
        hold: std::time::Duration::ZERO,
    };
    serve(
        axum::Router::new()
            .route("/", axum::routing::post(aliyun_handler))
            .with_state(s),
        seen,
    )
    .await
}

async fn twilio_handler(
    State(s): State<Shared>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", s.key_id, s.secret))
    );
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if sid != s.key_id || auth != want {
        refuse(&s, "20003: Authenticate".into());
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"code": 20003, "message": "Authenticate", "status": 401}),
        );
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(to), Some(from), Some(text)) = (get("To"), get("From"), get("Body")) else {
        refuse(&s, "21604: To, From and Body are required".into());
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": 21604, "message": "A 'To', 'From' and 'Body' are required", "status": 400}),
        );
    };
    if !to.starts_with('+') {
        refuse(&s, format!("21211: invalid To {to}"));
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": 21211, "message": format!("The 'To' number {to} is not a valid phone number."), "status": 400}),
        );
    }
    let msid = {
        let Ok(mut g) = s.seen.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let msid = format!("SM{:032x}", g.accepted.len() as u128 + 0xabc0);
        g.accepted.push(Accepted {
            id: msid.clone(),
            to: to.clone(),
            text,
            detail: from.clone(),
        });
        msid
    };
    if !s.hold.is_zero() {
        tokio::time::sleep(s.hold).await;
    }
    if let Some(cb) = get("StatusCallback") {
        let (s2, msid2, account) = (s.clone(), msid.clone(), s.key_id.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let last = if s2.undeliverable.contains(&to) {
                "undelivered"
            } else {
                "delivered"
            };
            for status in ["sent", last] {
                let mut form = vec![
                    ("AccountSid".to_string(), account.clone()),
                    ("From".to_string(), from.clone()),
                    ("MessageSid".to_string(), msid2.clone()),
                    ("MessageStatus".to_string(), status.to_string()),
                    ("SmsSid".to_string(), msid2.clone()),
                    ("SmsStatus".to_string(), status.to_string()),
                    ("To".to_string(), to.clone()),
                ];
                if status == "undelivered" {
                    form.push(("ErrorCode".into(), "30003".into()));
                }
                let code = post_callback(&http, &cb, &form, &s2.secret).await;
                if let Ok(mut g) = s2.seen.lock() {
                    g.callbacks.push((status.to_string(), code));
                }
            }
        });
    }
    json(
        StatusCode::CREATED,
        serde_json::json!({"sid": msid, "status": "queued", "account_sid": s.key_id}),
    )
}

/// Posts a status callback signed with `token` (the account's auth token, or a wrong one to
/// play a forger); returns the listener's HTTP status (0: no answer).
pub async fn post_callback(
    http: &reqwest::Client,
    url: &str,
    form: &[(String, String)],
    token: &str,
) -> u16 {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    http.post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", tw::signature(token, url, form))
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// A Twilio Messages API endpoint for one account.
pub async fn twilio(
    account_sid: &str,
    auth_token: &str,
    undeliverable: &[&str],
) -> std::io::Result<PeerHandle> {
    twilio_holding(
        account_sid,
        auth_token,
        undeliverable,
        std::time::Duration::ZERO,
    )
    .await
}

/// [`twilio`] that records each message and then waits `hold` before answering.
pub async fn twilio_holding(
    account_sid: &str,
    auth_token: &str,
    undeliverable: &[&str],
    hold: std::time::Duration,
) -> std::io::Result<PeerHandle> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = Shared {
        key_id: account_sid.into(),
        secret: auth_token.into(),
        undeliverable: undeliverable.iter().map(|u| u.to_string()).collect(),
        seen: seen.clone(),
        hold,
    };
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            axum::routing::post(twilio_handler),
        )
        .with_state(s);
    serve(app, seen).await
}
