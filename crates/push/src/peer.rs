//! Local stand-ins for APNs, FCM and a webhook receiver, on 127.0.0.1 over TLS (HTTP/2
//! where the service requires it), with a CA made at start-up. They are not the product:
//! they are the far side the tests and `waihu bench` talk to, and they check what each
//! documented protocol requires — ES256/RS256 signatures against the keys they issued,
//! token ages, headers, HTTP/2, payload limits, HMAC signatures — answering a violation
//! the way the real service does and recording it, so a test can assert there were none.
//!
//! Like the real services they own the keys: each peer generates the credentials a
//! customer would download (an APNs `.p8` key, a service-account JSON) and hands them out.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::jwt;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("test certificate: {0}")]
    Cert(String),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
}

/// A CA and a server certificate for 127.0.0.1 / localhost signed by it.
pub struct TestCa {
    /// The CA certificate a client must trust (`ca_file`).
    pub ca_pem: String,
    acceptor: TlsAcceptor,
}

impl TestCa {
    pub fn new() -> Result<TestCa, PeerError> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let c = |e: rcgen::Error| PeerError::Cert(e.to_string());
        let ca_key = KeyPair::generate().map_err(c)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(c)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "waihu test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).map_err(c)?;
        let leaf_key = KeyPair::generate().map_err(c)?;
        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .map_err(c)?;
        leaf.distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).map_err(c)?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PeerError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![leaf_cert.der().clone()], key)
            .map_err(|e| PeerError::Tls(e.to_string()))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TestCa {
            ca_pem: ca_cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(cfg)),
        })
    }
}

/// One request as a peer sees it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub http2: bool,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, headers, body.
pub type Resp = (u16, Vec<(String, String)>, Vec<u8>);
type Handler = Arc<dyn Fn(Req) -> Resp + Send + Sync>;

async fn serve(listener: TcpListener, tls: TlsAcceptor, handler: Handler) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (tls, handler) = (tls.clone(), handler.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|c| c.to_bytes().to_vec())
                        .unwrap_or_default();
                    let req = Req {
                        method: parts.method.to_string(),
                        path: parts.uri.path().to_string(),
                        http2: parts.version == hyper::Version::HTTP_2,
                        headers: parts
                            .headers
                            .iter()
                            .filter_map(|(k, v)| {
                                Some((k.to_string(), v.to_str().ok()?.to_string()))
                            })
                            .collect(),
                        body,
                    };
                    let (status, headers, body) = handler(req);
                    let mut r = hyper::Response::builder().status(status);
                    for (k, v) in headers {
                        r = r.header(k, v);
                    }
                    let resp = r
                        .body(Full::new(Bytes::from(body)))
                        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())));
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn start(
    ca: &TestCa,
    handler: Handler,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), PeerError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(serve(listener, ca.acceptor.clone(), handler));
    Ok((addr, task))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What a peer saw: deliveries, protocol violations, and how often each key came.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Accepted notifications: (device token, payload).
    pub delivered: Vec<(String, Value)>,
    /// Requests that broke the protocol, with what was wrong.
    pub violations: Vec<String>,
    /// Requests per device token (accepted or not).
    pub attempts: HashMap<String, usize>,
    /// Access tokens issued (FCM) or provider tokens seen (APNs).
    pub tokens: usize,
}

/// Tokens the peers treat specially, as the real services would.
#[derive(Debug, Default, Clone)]
pub struct Script {
    /// Device tokens whose app was removed (APNs 410 Unregistered, FCM 404 UNREGISTERED,
    /// webhook 410).
    pub unregistered: HashSet<String>,
    /// Device tokens answered "too many requests" (with Retry-After: 1) the first time.
    pub busy_once: HashSet<String>,
}

pub struct Peer {
    pub url: String,
    pub seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peer {
    pub fn seen(&self) -> Seen {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn json_resp(status: u16, v: Value) -> Resp {
    (
        status,
        vec![("content-type".into(), "application/json".into())],
        v.to_string().into_bytes(),
    )
}

/// Counts the attempt and answers the scripted refusals; None: go on and accept.
fn scripted(seen: &mut Seen, script: &Script, token: &str) -> Option<&'static str> {
    let n = {
        let n = seen.attempts.entry(token.to_string()).or_insert(0);
        *n += 1;
        *n
    };
    if script.unregistered.contains(token) {
        Some("unregistered")
    } else if script.busy_once.contains(token) && n == 1 {
        Some("busy")
    } else {
        None
    }
}

/// An APNs peer and the credentials it issued.
pub struct ApnsPeer {
    pub peer: Peer,
    /// The `.p8` key (PKCS#8 PEM) a team would download.
    pub key_pem: String,
    pub key_id: String,
    pub team_id: String,
    pub topic: String,
}

pub async fn apns(ca: &TestCa, script: Script) -> Result<ApnsPeer, PeerError> {
    use p256::pkcs8::EncodePrivateKey;
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let key_pem = key
        .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
        .map_err(|e| PeerError::Cert(e.to_string()))?
        .to_string();
    let verifying = *key.verifying_key();
    let (key_id, team_id, topic) = (
        "PEERKEY001".to_string(),
        "PEERTEAM01".to_string(),
        "com.example.shop".to_string(),
    );
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (k, t, tp, s) = (key_id.clone(), team_id.clone(), topic.clone(), seen.clone());
    let known: Arc<Mutex<HashSet<String>>> = Arc::default();
    let handler: Handler = Arc::new(move |req: Req| {
        let mut seen = s.lock().unwrap_or_else(|p| p.into_inner());
        let refuse = |seen: &mut Seen, status: u16, reason: &str, why: String| {
            seen.violations.push(format!("{reason}: {why}"));
            json_resp(status, json!({"reason": reason}))
        };
        if !req.http2 {
            return refuse(
                &mut seen,
                400,
                "BadRequest",
                "APNs speaks HTTP/2 only".into(),
            );
        }
        let Some(device) = req.path.strip_prefix("/3/device/") else {
            return refuse(&mut seen, 404, "BadPath", req.path.clone());
        };
        if req.method != "POST" {
            return refuse(&mut seen, 405, "MethodNotAllowed", req.method.clone());
        }
        let Some(bearer) = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("bearer "))
        else {
            return refuse(
                &mut seen,
                403,
                "MissingProviderToken",
                "no bearer token".into(),
            );
        };
        let tok = match jwt::decode(bearer) {
            Ok(d) => d,
            Err(e) => return refuse(&mut seen, 403, "InvalidProviderToken", e.to_string()),
        };
        if let Err(e) = tok.verify_es256(&verifying) {
            return refuse(&mut seen, 403, "InvalidProviderToken", e.to_string());
        }
        if tok.str("kid") != Some(k.as_str()) || tok.str("iss") != Some(t.as_str()) {
            return refuse(&mut seen, 403, "InvalidProviderToken", "kid or iss".into());
        }
        let age = unix_now() - tok.num("iat").unwrap_or(0);
        if !(-60..3600).contains(&age) {
            return refuse(
                &mut seen,
                403,
                "ExpiredProviderToken",
                format!("iat {age} s old"),
            );
        }
        if let Ok(mut k) = known.lock() {
            if k.insert(bearer.to_string()) {
                seen.tokens += 1;
            }
        }
        if req.header("apns-topic") != Some(tp.as_str()) {
            return refuse(
                &mut seen,
                400,
                "BadTopic",
                format!("{:?}", req.header("apns-topic")),
            );
        }
        if !matches!(req.header("apns-push-type"), Some("alert" | "background")) {
            return refuse(
                &mut seen,
                400,
                "InvalidPushType",
                format!("{:?}", req.header("apns-push-type")),
            );
        }
        let id = req.header("apns-id").unwrap_or("").to_string();
        if !id.is_empty()
            && (id.len() != 36
                || id.split('-').map(str::len).collect::<Vec<_>>() != [8, 4, 4, 4, 12])
        {
            return refuse(&mut seen, 400, "BadMessageId", id);
        }
        if req.body.len() > crate::apns::MAX_PAYLOAD {
            return refuse(
                &mut seen,
                413,
                "PayloadTooLarge",
                req.body.len().to_string(),
            );
        }
        let payload: Value = match serde_json::from_slice(&req.body) {
            Ok(v @ Value::Object(_)) if v.get("aps").is_some() => v,
            _ => return refuse(&mut seen, 400, "PayloadEmpty", "no aps dictionary".into()),
        };
        if !(device.len() >= 64 && device.bytes().all(|b| b.is_ascii_hexdigit())) {
            return json_resp(400, json!({"reason": "BadDeviceToken"}));
        }
        match scripted(&mut seen, &script, device) {
            Some("unregistered") => json_resp(
                410,
                json!({"reason": "Unregistered", "timestamp": unix_now() * 1000}),
            ),
            Some(_) => {
                let (st, mut h, b) = json_resp(429, json!({"reason": "TooManyRequests"}));
                h.push(("retry-after".into(), "1".into()));
                (st, h, b)
            }
            None => {
                seen.delivered.push((device.to_string(), payload));
                let id = if id.is_empty() {
                    format!("peer-{}", seen.delivered.len())
                } else {
                    id
                };
                (200, vec![("apns-id".into(), id)], Vec::new())
            }
        }
    });
    let (addr, task) = start(ca, handler).await?;
    Ok(ApnsPeer {
        peer: Peer {
            url: format!("https://{addr}"),
            seen,
            task,
        },
        key_pem,
        key_id,
        team_id,
        topic,
    })
}

/// An FCM peer (token endpoint and send endpoint) and the service account it issued.
pub struct FcmPeer {
    pub peer: Peer,
    /// The service-account JSON a project owner would download; `token_uri` points at the
    /// peer.
    pub service_account_json: String,
    pub project_id: String,
}

pub async fn fcm(ca: &TestCa, script: Script) -> Result<FcmPeer, PeerError> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
        .map_err(|e| PeerError::Cert(e.to_string()))?;
    let pem = key
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .map_err(|e| PeerError::Cert(e.to_string()))?
        .to_string();
    let verifying = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key.to_public_key());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let url = format!("https://{addr}");
    let project_id = "shop-app".to_string();
    let email = "waihu-push@shop-app.iam.gserviceaccount.com".to_string();
    let token_uri = format!("{url}/token");
    let service_account_json = json!({
        "type": "service_account", "project_id": project_id, "private_key_id": "peer-key-1",
        "private_key": pem, "client_email": email, "client_id": "1",
        "token_uri": token_uri,
    })
    .to_string();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let issued: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (s, aud, send_path) = (
        seen.clone(),
        token_uri.clone(),
        format!("/v1/projects/{project_id}/messages:send"),
    );
    let handler: Handler = Arc::new(move |req: Req| {
        let mut seen = s.lock().unwrap_or_else(|p| p.into_inner());
        let err = |status: u16, rpc: &str, code: Option<&str>, msg: &str| {
            let details: Vec<Value> = code
                .map(|c| vec![json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": c})])
                .unwrap_or_default();
            json_resp(
                status,
                json!({"error": {"code": status, "message": msg, "status": rpc, "details": details}}),
            )
        };
        if req.method != "POST" {
            seen.violations.push(format!("{} {}", req.method, req.path));
            return err(405, "INVALID_ARGUMENT", None, "POST only");
        }
        if req.path == "/token" {
            let form: BTreeMap<String, String> = String::from_utf8_lossy(&req.body)
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.replace("%3A", ":").replace("%3a", ":")))
                .collect();
            let bad = |seen: &mut Seen, why: String| {
                seen.violations.push(format!("token: {why}"));
                json_resp(
                    400,
                    json!({"error": "invalid_grant", "error_description": why}),
                )
            };
            if form.get("grant_type").map(String::as_str) != Some(crate::fcm::GRANT_TYPE) {
                return bad(
                    &mut seen,
                    format!("grant_type {:?}", form.get("grant_type")),
                );
            }
            let Some(a) = form.get("assertion") else {
                return bad(&mut seen, "no assertion".into());
            };
            let d = match jwt::decode(a) {
                Ok(d) => d,
                Err(e) => return bad(&mut seen, e.to_string()),
            };
            if let Err(e) = d.verify_rs256(&verifying) {
                return bad(&mut seen, e.to_string());
            }
            let (iat, exp) = (d.num("iat").unwrap_or(0), d.num("exp").unwrap_or(0));
            if d.str("iss") != Some(email.as_str())
                || d.str("aud") != Some(aud.as_str())
                || d.str("scope") != Some(crate::fcm::SCOPE)
                || exp - iat > 3600
                || exp <= unix_now()
            {
                return bad(&mut seen, format!("claims {}", d.claims));
            }
            seen.tokens += 1;
            let t = format!("ya29.peer-{}-{}", seen.tokens, rand::random::<u64>());
            if let Ok(mut i) = issued.lock() {
                i.insert(t.clone());
            }
            return json_resp(
                200,
                json!({"access_token": t, "expires_in": 3599, "token_type": "Bearer"}),
            );
        }
        if req.path != send_path {
            seen.violations.push(format!("path {}", req.path));
            return err(404, "NOT_FOUND", None, "no such method");
        }
        let authorised = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| issued.lock().map(|i| i.contains(t)).unwrap_or(false));
        if !authorised {
            seen.violations
                .push("send without a valid access token".into());
            return err(
                401,
                "UNAUTHENTICATED",
                None,
                "Request had invalid authentication credentials.",
            );
        }
        let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let m = &v["message"];
        let Some(device) = m["token"].as_str().filter(|t| !t.is_empty()) else {
            seen.violations.push("message without token".into());
            return err(
                400,
                "INVALID_ARGUMENT",
                Some("INVALID_ARGUMENT"),
                "The registration token is not a valid FCM registration token",
            );
        };
        if m["data"]
            .as_object()
            .is_some_and(|d| d.values().any(|x| !x.is_string()))
        {
            seen.violations.push("data values must be strings".into());
            return err(
                400,
                "INVALID_ARGUMENT",
                Some("INVALID_ARGUMENT"),
                "data must be a map of strings",
            );
        }
        match scripted(&mut seen, &script, device) {
            Some("unregistered") => err(
                404,
                "NOT_FOUND",
                Some("UNREGISTERED"),
                "Requested entity was not found.",
            ),
            Some(_) => {
                let (st, mut h, b) =
                    err(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED"), "quota");
                h.push(("retry-after".into(), "1".into()));
                (st, h, b)
            }
            None => {
                seen.delivered.push((device.to_string(), m.clone()));
                json_resp(
                    200,
                    json!({"name": format!("projects/shop-app/messages/{}", seen.delivered.len())}),
                )
            }
        }
    });
    let task = tokio::spawn(serve(listener, ca.acceptor.clone(), handler));
    Ok(FcmPeer {
        peer: Peer { url, seen, task },
        service_account_json,
        project_id,
    })
}

/// A webhook receiver that verifies signatures and drops duplicate idempotency keys.
pub async fn webhook(ca: &TestCa, secret: &[u8], script: Script) -> Result<Peer, PeerError> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let keys: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (s, secret) = (seen.clone(), secret.to_vec());
    let handler: Handler = Arc::new(move |req: Req| {
        let mut seen = s.lock().unwrap_or_else(|p| p.into_inner());
        let ts = req
            .header("x-waihu-timestamp")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0);
        let sig = req.header("x-waihu-signature").unwrap_or("");
        if let Err(e) =
            crate::webhook::verify(&secret, ts, &req.body, sig, unix_now().max(0) as u64)
        {
            seen.violations.push(format!("signature: {e}"));
            return (401, vec![], e.to_string().into_bytes());
        }
        let Some(key) = req.header("idempotency-key").map(str::to_string) else {
            seen.violations.push("no Idempotency-Key".into());
            return (400, vec![], b"Idempotency-Key required".to_vec());
        };
        let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let to = v["to"].as_str().unwrap_or("").to_string();
        match scripted(&mut seen, &script, &to) {
            Some("unregistered") => (410, vec![], b"unknown user".to_vec()),
            Some(_) => (
                503,
                vec![("retry-after".into(), "1".into())],
                b"busy".to_vec(),
            ),
            None => {
                if keys
                    .lock()
                    .map(|mut k| k.insert(key.clone()))
                    .unwrap_or(true)
                {
                    seen.delivered.push((to, v));
                }
                (202, vec![("x-request-id".into(), key)], Vec::new())
            }
        }
    });
    let (addr, task) = start(ca, handler).await?;
    Ok(Peer {
        url: format!("https://{addr}/push"),
        seen,
        task,
    })
}
