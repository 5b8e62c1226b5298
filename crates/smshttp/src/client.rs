//! The runtime: sends the sans-IO cores' requests with reqwest (rustls) and runs the
//! Twilio status-callback listener and the Alibaba push receiver.
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::config::{GatewayKind, SmsHttpConfig};
use crate::{aliyun, twilio, HttpRequest, Outcome, Receipt};

pub struct HttpSmsClient {
    pub config: SmsHttpConfig,
    http: reqwest::Client,
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct OutgoingText<'a> {
    pub to: &'a str,
    pub text: &'a str,
    pub template: &'a str,
    /// The outbox key (Alibaba `OutId`).
    pub key: &'a str,
}

fn nonce() -> String {
    use rand::Rng;
    let b: [u8; 16] = rand::thread_rng().gen();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl HttpSmsClient {
    pub fn new(config: SmsHttpConfig) -> Result<HttpSmsClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(HttpSmsClient { config, http })
    }

    async fn execute(&self, r: HttpRequest) -> Result<(u16, String), Outcome> {
        let mut b = self.http.request(
            reqwest::Method::from_bytes(r.method.as_bytes()).unwrap_or(reqwest::Method::POST),
            &r.url,
        );
        for (k, v) in &r.headers {
            b = b.header(k, v);
        }
        match b.body(r.body).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.text().await {
                    Ok(body) => Ok((status, body)),
                    Err(e) => Err(Outcome::Unknown {
                        reason: format!("HTTP {status}, body lost: {e}"),
                    }),
                }
            }
            // Refused before a byte went out: nothing was sent.
            Err(e) if e.is_connect() => Err(Outcome::RetryLater {
                reason: format!("connection failed: {e}"),
            }),
            Err(e) => Err(Outcome::Unknown {
                reason: format!("no answer: {e}"),
            }),
        }
    }

    /// Sends through `gateway`.
    pub async fn send(&self, gateway: GatewayKind, m: &OutgoingText<'_>) -> Outcome {
        match gateway {
            GatewayKind::Twilio => {
                let Some(t) = &self.config.twilio else {
                    return Outcome::Rejected {
                        reason: "no twilio gateway is configured".into(),
                    };
                };
                match self
                    .execute(twilio::send_request(&t.account, m.to, m.text))
                    .await
                {
                    Ok((s, b)) => twilio::map_send(s, &b),
                    Err(o) => o,
                }
            }
            GatewayKind::Aliyun => {
                let Some(a) = &self.config.aliyun else {
                    return Outcome::Rejected {
                        reason: "no aliyun gateway is configured".into(),
                    };
                };
                let Some(t) = a.templates.get(m.template) else {
                    return Outcome::Rejected {
                        reason: format!(
                            "template '{}' has no Alibaba TemplateCode in the gateways file",
                            m.template
                        ),
                    };
                };
                // The text without its 【签名】: Alibaba adds the approved SignName itself.
                let body = strip_signature(m.text);
                let param = serde_json::json!({ t.param.clone(): body }).to_string();
                let phone = aliyun::phone_param(m.to);
                let req = aliyun::send_request(
                    &a.account,
                    &aliyun::Send {
                        phone: &phone,
                        sign_name: &a.sign_name,
                        template_code: &t.code,
                        template_param: &param,
                        out_id: m.key,
                    },
                    &nonce(),
                    Utc::now(),
                );
                match self.execute(req).await {
                    Ok((s, b)) => aliyun::map_send(s, &b),
                    Err(o) => o,
                }
            }
        }
    }

    /// Pulls Alibaba's delivery report for a message sent at `sent_at` (None: not final yet).
    pub async fn aliyun_receipt(
        &self,
        to: &str,
        biz_id: &str,
        sent_at: DateTime<Utc>,
    ) -> Result<Option<Receipt>, String> {
        let Some(a) = &self.config.aliyun else {
            return Err("no aliyun gateway is configured".into());
        };
        // SendDate is the day in Beijing time.
        let day = sent_at
            .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset"))
            .format("%Y%m%d")
            .to_string();
        let req = aliyun::query_request(
            &a.account,
            &aliyun::phone_param(to),
            biz_id,
            &day,
            &nonce(),
            Utc::now(),
        );
        match self.execute(req).await {
            Ok((_, body)) => aliyun::map_query(biz_id, &body),
            Err(o) => Err(format!("{o:?}")),
        }
    }
}

/// `【外呼】您好…` → `您好…` (a leading or trailing signature).
pub fn strip_signature(text: &str) -> &str {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix('【') {
        if let Some(i) = rest.find('】') {
            return rest[i + '】'.len_utf8()..].trim_start();
        }
    }
    if t.ends_with('】') {
        if let Some(i) = t.rfind('【') {
            return t[..i].trim_end();
        }
    }
    t
}

/// What the status listener saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    Receipt(Receipt),
    /// A message from a handset (the incoming-message webhook).
    Inbound(twilio::Inbound),
    /// A callback whose `X-Twilio-Signature` did not verify (403), or an Alibaba push to a
    /// path without the token (404).
    Forged,
}

/// The path of a URL (`https://h/twilio/status?x=1` → `/twilio/status`).
pub fn url_path(url: &str) -> String {
    url.split_once("://")
        .and_then(|(_, r)| {
            r.find('/')
                .map(|i| r[i..].split('?').next().unwrap_or("/").to_string())
        })
        .unwrap_or_else(|| "/".into())
}

/// Serves Twilio's webhooks on `bind` until `shutdown`: status callbacks at the path of
/// `status_url` (the `StatusCallback` Twilio was given) and incoming messages at the path of
/// `inbound_url` (the number's "A message comes in" webhook). Each request's
/// `X-Twilio-Signature` must verify over its public URL and form, else 403 and
/// [`Callback::Forged`]. Every callback is on `tx` before its answer leaves.
pub async fn twilio_listener(
    bind: SocketAddr,
    status_url: Option<String>,
    inbound_url: Option<String>,
    auth_token: String,
    tx: mpsc::UnboundedSender<Callback>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    type St = (String, String, mpsc::UnboundedSender<Callback>);
    fn verified(
        url: &str,
        token: &str,
        headers: &HeaderMap,
        body: &str,
    ) -> Option<Vec<(String, String)>> {
        let params: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let sig = headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        twilio::verify(token, url, &params, sig).then_some(params)
    }
    let inbound = |State((url, token, tx)): State<St>, headers: HeaderMap, body: String| async move {
        let Some(params) = verified(&url, &token, &headers, &body) else {
            let _ = tx.send(Callback::Forged);
            return StatusCode::FORBIDDEN.into_response();
        };
        if let Some(m) = twilio::inbound_message(&params) {
            let _ = tx.send(Callback::Inbound(m));
        }
        // Empty TwiML: no automatic answer to the handset.
        (
            [(axum::http::header::CONTENT_TYPE, "text/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
        )
            .into_response()
    };
    let handler = |State((url, token, tx)): State<St>, headers: HeaderMap, body: String| async move {
        let params: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let sig = headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !twilio::verify(&token, &url, &params, sig) {
            let _ = tx.send(Callback::Forged);
            return StatusCode::FORBIDDEN;
        }
        if let Some(r) = twilio::callback_receipt(&params) {
            let _ = tx.send(Callback::Receipt(r));
        }
        StatusCode::NO_CONTENT
    };
    let mut app = axum::Router::new();
    if let Some(u) = status_url {
        app = app.route(
            &url_path(&u),
            axum::routing::post(handler).with_state((u, auth_token.clone(), tx.clone())),
        );
    }
    if let Some(u) = inbound_url {
        app = app.route(
            &url_path(&u),
            axum::routing::post(inbound).with_state((u, auth_token, tx)),
        );
    }
    serve_until(listener, app, shutdown);
    Ok(addr)
}

/// Receives Alibaba Cloud's pushed reports and replies (HTTP 批量推送) on `bind` until
/// `shutdown`: `POST /aliyun/<token>/SmsReport` and `POST /aliyun/<token>/SmsUp`, the URLs to
/// enter in the console behind the public HTTPS front. A path without the token (compared in
/// constant time) is 404 and [`Callback::Forged`]; a body that is not the documented JSON is
/// 400 with the reason, and nothing in it is taken; an accepted body is 200 with the
/// documented `{"code":0,…}` after every item has been put on `tx`.
pub async fn aliyun_listener(
    bind: SocketAddr,
    token: String,
    tx: mpsc::UnboundedSender<Callback>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    type St = (std::sync::Arc<String>, mpsc::UnboundedSender<Callback>);
    fn same(a: &str, b: &str) -> bool {
        a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
    }
    let handler = |State((token, tx)): State<St>,
                   Path((given, kind)): Path<(String, String)>,
                   body: String| async move {
        if !same(&given, &token) {
            let _ = tx.send(Callback::Forged);
            return StatusCode::NOT_FOUND.into_response();
        }
        let taken: Result<Vec<Callback>, String> =
            match kind.as_str() {
                "SmsReport" => aliyun::push_reports(&body)
                    .map(|v| v.into_iter().map(Callback::Receipt).collect()),
                "SmsUp" => aliyun::push_replies(&body)
                    .map(|v| v.into_iter().map(Callback::Inbound).collect()),
                _ => return StatusCode::NOT_FOUND.into_response(),
            };
        match taken {
            Ok(items) => {
                for c in items {
                    let _ = tx.send(c);
                }
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    aliyun::PUSH_OK,
                )
                    .into_response()
            }
            Err(reason) => {
                tracing::warn!(%reason, "Alibaba push refused");
                (
                    StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({"code": 1, "msg": reason})),
                )
                    .into_response()
            }
        }
    };
    let app = axum::Router::new()
        .route("/aliyun/{token}/{kind}", axum::routing::post(handler))
        .with_state((std::sync::Arc::new(token), tx));
    serve_until(listener, app, shutdown);
    Ok(addr)
}

/// Serves `app` on `listener` in a task until `shutdown` becomes true (or its sender is
/// dropped).
fn serve_until(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                while !*stop.borrow() {
                    if stop.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await;
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_are_stripped() {
        assert_eq!(super::strip_signature("【外呼】您好"), "您好");
        assert_eq!(super::strip_signature("您好【外呼】"), "您好");
        assert_eq!(super::strip_signature("hello"), "hello");
    }
}
