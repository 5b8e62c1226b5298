//! The runtime: sends what the sans-IO cores build, with reqwest over rustls (HTTP/2 for
//! APNs, which accepts nothing else), keeps the provider and access tokens, and turns
//! transport failures into outcomes: refused before sending → retry, sent and no answer →
//! unknown.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Mutex;

use crate::apns::ApnsAuth;
use crate::config::PushConfig;
use crate::fcm::FcmAuth;
use crate::{apns, fcm, webhook, HttpRequest, Outcome, Platform, PushMessage};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{gateway}: {message}")]
    Setup {
        gateway: &'static str,
        message: String,
    },
}

struct Apns {
    http: reqwest::Client,
    auth: Mutex<ApnsAuth>,
    endpoint: String,
    topic: String,
}

struct Fcm {
    http: reqwest::Client,
    auth: Mutex<FcmAuth>,
    endpoint: String,
}

struct Webhook {
    http: reqwest::Client,
    url: String,
    secret: Vec<u8>,
}

/// One client per configured gateway; cheap to share behind an `Arc`.
pub struct PushClient {
    apns: Option<Apns>,
    fcm: Option<Fcm>,
    webhook: Option<Webhook>,
    pub title: String,
    pub ttl: Duration,
    pub default_platform: Option<Platform>,
}

fn http(
    gateway: &'static str,
    ca_pem: Option<&str>,
    h2_only: bool,
) -> Result<reqwest::Client, ClientError> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .pool_idle_timeout(Duration::from_secs(600));
    if h2_only {
        b = b.http2_prior_knowledge();
    }
    if let Some(pem) = ca_pem {
        let cert =
            reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| ClientError::Setup {
                gateway,
                message: format!("ca_file is not a PEM certificate: {e}"),
            })?;
        b = b.tls_built_in_root_certs(false).add_root_certificate(cert);
    }
    b.build().map_err(|e| ClientError::Setup {
        gateway,
        message: e.to_string(),
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a transport failure means for a request: never sent, or maybe sent.
fn transport_outcome(gateway: &str, e: &reqwest::Error) -> Outcome {
    if e.is_connect() || e.is_builder() {
        Outcome::RetryLater {
            reason: format!("{gateway}: connection failed before sending: {e}"),
            after: None,
        }
    } else {
        Outcome::Unknown {
            reason: format!("{gateway}: no answer: {e}"),
        }
    }
}

async fn exchange(
    http: &reqwest::Client,
    req: &HttpRequest,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), reqwest::Error> {
    let mut b = http.post(&req.url).body(req.body.clone());
    for (k, v) in &req.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let resp = b.send().await?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = resp.bytes().await?.to_vec();
    Ok((status, headers, body))
}

impl PushClient {
    pub fn new(cfg: &PushConfig) -> Result<PushClient, ClientError> {
        let apns = match &cfg.apns {
            None => None,
            Some(a) => Some(Apns {
                http: http("apns", a.ca_pem.as_deref(), true)?,
                auth: Mutex::new(
                    ApnsAuth::from_p8(&a.key_pem, &a.key_id, &a.team_id).map_err(|e| {
                        ClientError::Setup {
                            gateway: "apns",
                            message: e.to_string(),
                        }
                    })?,
                ),
                endpoint: a.endpoint.clone(),
                topic: a.topic.clone(),
            }),
        };
        let fcm = match &cfg.fcm {
            None => None,
            Some(f) => Some(Fcm {
                http: http("fcm", f.ca_pem.as_deref(), false)?,
                auth: Mutex::new(FcmAuth::from_json(&f.service_account_json).map_err(|e| {
                    ClientError::Setup {
                        gateway: "fcm",
                        message: e.to_string(),
                    }
                })?),
                endpoint: f.endpoint.clone(),
            }),
        };
        let webhook = match &cfg.webhook {
            None => None,
            Some(w) => Some(Webhook {
                http: http("webhook", w.ca_pem.as_deref(), false)?,
                url: w.url.clone(),
                secret: w.secret.clone(),
            }),
        };
        Ok(PushClient {
            apns,
            fcm,
            webhook,
            title: cfg.title.clone(),
            ttl: cfg.ttl,
            default_platform: cfg.default_platform,
        })
    }

    /// Whether a gateway for `p` is configured.
    pub fn serves(&self, p: Platform) -> bool {
        match p {
            Platform::Apns => self.apns.is_some(),
            Platform::Fcm => self.fcm.is_some(),
            Platform::Webhook => self.webhook.is_some(),
        }
    }

    /// Sends one notification and says what became of it.
    pub async fn send(&self, platform: Platform, msg: &PushMessage) -> Outcome {
        let not_configured = || Outcome::Rejected {
            reason: format!("no {} gateway is configured", platform.as_str()),
            token_invalid: false,
        };
        let now = unix_now();
        match platform {
            Platform::Apns => {
                let Some(a) = &self.apns else {
                    return not_configured();
                };
                let token = a.auth.lock().await.token(now).to_string();
                let req = match apns::request(&a.endpoint, &a.topic, &token, msg, now) {
                    Ok(r) => r,
                    Err(o) => return o,
                };
                let out = match exchange(&a.http, &req).await {
                    Ok((s, h, b)) => apns::outcome(s, &h, &b),
                    Err(e) => transport_outcome("apns", &e),
                };
                if matches!(out, Outcome::AuthFailed { .. }) {
                    a.auth.lock().await.invalidate();
                }
                out
            }
            Platform::Fcm => {
                let Some(f) = &self.fcm else {
                    return not_configured();
                };
                let req = {
                    let mut auth = f.auth.lock().await;
                    if auth.access_token(now).is_none() {
                        let tr = auth.token_request(now);
                        match exchange(&f.http, &tr).await {
                            Ok((s, _, b)) => {
                                if let Err(e) = auth.token_response(s, &b, now) {
                                    return Outcome::AuthFailed {
                                        reason: format!("fcm: {e}"),
                                    };
                                }
                            }
                            Err(e) => {
                                // Asking for a token sends nothing to the device.
                                return Outcome::RetryLater {
                                    reason: format!("fcm: token endpoint: {e}"),
                                    after: None,
                                };
                            }
                        }
                    }
                    let access = auth.access_token(now).unwrap_or_default().to_string();
                    auth.send_request(&f.endpoint, &access, msg)
                };
                let out = match exchange(&f.http, &req).await {
                    Ok((s, h, b)) => fcm::outcome(s, &h, &b),
                    Err(e) => transport_outcome("fcm", &e),
                };
                if matches!(out, Outcome::AuthFailed { .. }) {
                    f.auth.lock().await.invalidate();
                }
                out
            }
            Platform::Webhook => {
                let Some(w) = &self.webhook else {
                    return not_configured();
                };
                let req = webhook::request(&w.url, &w.secret, msg, now);
                match exchange(&w.http, &req).await {
                    Ok((s, h, b)) => webhook::outcome(s, &h, &b),
                    Err(e) => transport_outcome("webhook", &e),
                }
            }
        }
    }
}
