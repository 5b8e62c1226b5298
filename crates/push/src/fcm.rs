//! Firebase Cloud Messaging HTTP v1.
//!
//! - Credentials: a Google service-account JSON key (`type`, `project_id`,
//!   `private_key_id`, `private_key` as PKCS#8 RSA PEM, `client_email`, `token_uri`).
//! - Access token (RFC 7523 JWT-bearer grant): `POST token_uri` with form
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`, the JWT
//!   RS256-signed with header `{"alg":"RS256","typ":"JWT","kid":<private_key_id>}` and
//!   claims `{iss: client_email, scope: .../firebase.messaging, aud: token_uri, iat, exp}`
//!   (at most one hour). The answer is `{"access_token","expires_in","token_type"}`; the
//!   token is reused until five minutes before it expires.
//! - Send: `POST /v1/projects/<project_id>/messages:send`, `Authorization: Bearer`, body
//!   `{"message":{"token","notification":{"title","body"},"data":{..},"android":{"ttl"}}}`.
//!   200 answers `{"name":"projects/<id>/messages/<id>"}`; errors are Google RPC statuses
//!   with an `FcmError` detail: `UNREGISTERED` (404) and `SENDER_ID_MISMATCH` mean the token
//!   is dead, `QUOTA_EXCEEDED` (429), `UNAVAILABLE` (503) and `INTERNAL` (500) mean retry,
//!   401 means our access token was refused.
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{jwt, retry_after, HttpRequest, Outcome, PushMessage};

pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const ENDPOINT: &str = "https://fcm.googleapis.com";
/// An access token is replaced this long before it expires.
pub const REFRESH_MARGIN: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("not a service-account JSON key: {0}")]
    Json(String),
    #[error("service-account key: `type` is {0:?}, expected \"service_account\"")]
    Type(String),
    #[error("service-account key: `{0}` is empty")]
    Missing(&'static str),
    #[error("service-account key: `private_key` is not a PKCS#8 RSA key in PEM: {0}")]
    Key(String),
}

#[derive(Deserialize)]
struct AccountFile {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    project_id: String,
    #[serde(default)]
    private_key_id: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    token_uri: String,
}

/// A service account with its access token cache.
pub struct FcmAuth {
    pub project_id: String,
    pub client_email: String,
    pub token_uri: String,
    key_id: String,
    key: rsa::pkcs1v15::SigningKey<sha2::Sha256>,
    access: Option<(String, u64)>,
}

impl std::fmt::Debug for FcmAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmAuth")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl FcmAuth {
    pub fn from_json(text: &str) -> Result<FcmAuth, AccountError> {
        use rsa::pkcs8::DecodePrivateKey;
        let f: AccountFile =
            serde_json::from_str(text).map_err(|e| AccountError::Json(e.to_string()))?;
        if f.kind != "service_account" {
            return Err(AccountError::Type(f.kind));
        }
        for (name, v) in [
            ("project_id", &f.project_id),
            ("private_key", &f.private_key),
            ("client_email", &f.client_email),
            ("token_uri", &f.token_uri),
        ] {
            if v.trim().is_empty() {
                return Err(AccountError::Missing(name));
            }
        }
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(f.private_key.trim())
            .map_err(|e| AccountError::Key(e.to_string()))?;
        Ok(FcmAuth {
            project_id: f.project_id,
            client_email: f.client_email,
            token_uri: f.token_uri,
            key_id: f.private_key_id,
            key: rsa::pkcs1v15::SigningKey::new(key),
            access: None,
        })
    }

    /// The access token to use at `now`, if one is held and not about to expire.
    pub fn access_token(&self, now: u64) -> Option<&str> {
        match &self.access {
            Some((t, exp)) if now + REFRESH_MARGIN < *exp => Some(t),
            _ => None,
        }
    }

    /// The token request (JWT-bearer grant) to send when [`Self::access_token`] is None.
    pub fn token_request(&self, now: u64) -> HttpRequest {
        let assertion = jwt::sign_rs256(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.key_id}),
            &json!({
                "iss": self.client_email,
                "scope": SCOPE,
                "aud": self.token_uri,
                "iat": now,
                "exp": now + 3600,
            }),
            &self.key,
        );
        HttpRequest {
            url: self.token_uri.clone(),
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: format!(
                "grant_type={}&assertion={assertion}",
                form_escape(GRANT_TYPE)
            )
            .into_bytes(),
        }
    }

    /// Takes the token endpoint's answer.
    pub fn token_response(&mut self, status: u16, body: &[u8], now: u64) -> Result<(), String> {
        #[derive(Deserialize)]
        struct Tok {
            access_token: String,
            #[serde(default = "default_expiry")]
            expires_in: u64,
        }
        fn default_expiry() -> u64 {
            3600
        }
        if status != 200 {
            let text = String::from_utf8_lossy(body);
            let short: String = text.chars().take(200).collect();
            return Err(format!("token endpoint answered {status}: {short}"));
        }
        let t: Tok = serde_json::from_slice(body)
            .map_err(|e| format!("token endpoint answer is not a token: {e}"))?;
        if t.access_token.is_empty() {
            return Err("token endpoint answered an empty access_token".into());
        }
        self.access = Some((t.access_token, now + t.expires_in));
        Ok(())
    }

    pub fn invalidate(&mut self) {
        self.access = None;
    }

    /// The send request for one notification.
    pub fn send_request(
        &self,
        endpoint: &str,
        access_token: &str,
        msg: &PushMessage,
    ) -> HttpRequest {
        let body = json!({
            "message": {
                "token": msg.token.trim(),
                "notification": {"title": msg.title, "body": msg.body},
                "data": msg.data,
                "android": {"ttl": format!("{}s", msg.ttl.as_secs()), "priority": "high"},
            }
        });
        HttpRequest {
            url: format!(
                "{}/v1/projects/{}/messages:send",
                endpoint.trim_end_matches('/'),
                self.project_id
            ),
            headers: vec![
                ("authorization".into(), format!("Bearer {access_token}")),
                ("content-type".into(), "application/json; UTF-8".into()),
            ],
            body: body.to_string().into_bytes(),
        }
    }
}

/// `application/x-www-form-urlencoded` escaping of one value.
pub fn form_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// What a send answer means.
pub fn outcome(status: u16, headers: &[(String, String)], body: &[u8]) -> Outcome {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if status == 200 {
        return match v.get("name").and_then(Value::as_str) {
            Some(n) => Outcome::Accepted { id: n.to_string() },
            None => Outcome::Unknown {
                reason: "FCM answered 200 without a message name".into(),
            },
        };
    }
    let err = &v["error"];
    let rpc = err["status"].as_str().unwrap_or("");
    let code = err["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|d| d["errorCode"].as_str())
        .unwrap_or(rpc);
    let message: String = err["message"]
        .as_str()
        .unwrap_or("")
        .chars()
        .take(160)
        .collect();
    let reason = format!("FCM {status} {code} {message}")
        .trim_end()
        .to_string();
    match (status, code) {
        (_, "UNREGISTERED" | "SENDER_ID_MISMATCH") | (404, _) => Outcome::Rejected {
            reason,
            token_invalid: true,
        },
        (401, _) | (_, "UNAUTHENTICATED") => Outcome::AuthFailed { reason },
        (429 | 500 | 503, _) | (_, "QUOTA_EXCEEDED" | "UNAVAILABLE" | "INTERNAL") => {
            Outcome::RetryLater {
                reason,
                after: retry_after(headers),
            }
        }
        _ => Outcome::Rejected {
            reason,
            token_invalid: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    pub(crate) fn account_json() -> (String, rsa::RsaPublicKey) {
        use rsa::pkcs8::EncodePrivateKey;
        let mut rng = rand::rngs::OsRng;
        let k = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let pem = k.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let j = json!({
            "type": "service_account", "project_id": "shop-app", "private_key_id": "k1",
            "private_key": pem.as_str(), "client_email": "push@shop-app.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token"
        });
        (j.to_string(), k.to_public_key())
    }

    #[test]
    fn assertion_is_a_verifiable_jwt_bearer_grant() {
        let (j, public) = account_json();
        let mut a = FcmAuth::from_json(&j).unwrap();
        assert_eq!(a.access_token(0), None);
        let r = a.token_request(1_000);
        let body = String::from_utf8(r.body).unwrap();
        assert!(body.starts_with(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="
        ));
        let d = jwt::decode(body.split("assertion=").nth(1).unwrap()).unwrap();
        d.verify_rs256(&rsa::pkcs1v15::VerifyingKey::new(public))
            .unwrap();
        assert_eq!(d.str("scope"), Some(SCOPE));
        assert_eq!(d.str("aud"), Some("https://oauth2.googleapis.com/token"));
        assert_eq!(d.num("exp"), Some(4_600));
        a.token_response(
            200,
            br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#,
            1_000,
        )
        .unwrap();
        assert_eq!(a.access_token(1_000), Some("ya29.x"));
        assert_eq!(a.access_token(1_000 + 3599 - REFRESH_MARGIN), None);
        assert!(a
            .token_response(400, br#"{"error":"invalid_grant"}"#, 0)
            .is_err());
        assert!(a.token_response(200, b"<html>", 0).is_err());
    }

    #[test]
    fn send_request_and_answers() {
        let (j, _) = account_json();
        let a = FcmAuth::from_json(&j).unwrap();
        let m = PushMessage {
            key: "k".into(),
            token: "dev-token".into(),
            title: "t".into(),
            body: "b".into(),
            data: BTreeMap::from([("campaign".into(), "3".into())]),
            ttl: Duration::from_secs(600),
        };
        let r = a.send_request(ENDPOINT, "ya29.x", &m);
        assert_eq!(
            r.url,
            "https://fcm.googleapis.com/v1/projects/shop-app/messages:send"
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["message"]["token"], "dev-token");
        assert_eq!(v["message"]["data"]["campaign"], "3");
        assert_eq!(v["message"]["android"]["ttl"], "600s");

        assert_eq!(
            outcome(200, &[], br#"{"name":"projects/shop-app/messages/1"}"#),
            Outcome::Accepted {
                id: "projects/shop-app/messages/1".into()
            }
        );
        let unreg = br#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#;
        assert!(matches!(
            outcome(404, &[], unreg),
            Outcome::Rejected {
                token_invalid: true,
                ..
            }
        ));
        assert!(matches!(
            outcome(429, &[], br#"{"error":{"status":"RESOURCE_EXHAUSTED","details":[{"errorCode":"QUOTA_EXCEEDED"}]}}"#),
            Outcome::RetryLater { .. }
        ));
        assert!(matches!(outcome(401, &[], b""), Outcome::AuthFailed { .. }));
        assert!(matches!(
            outcome(400, &[], br#"{"error":{"status":"INVALID_ARGUMENT"}}"#),
            Outcome::Rejected {
                token_invalid: false,
                ..
            }
        ));
        assert!(matches!(outcome(200, &[], b"{}"), Outcome::Unknown { .. }));
    }

    #[test]
    fn bad_accounts_are_explained() {
        assert!(matches!(
            FcmAuth::from_json("{"),
            Err(AccountError::Json(_))
        ));
        assert!(matches!(
            FcmAuth::from_json(r#"{"type":"authorized_user"}"#),
            Err(AccountError::Type(_))
        ));
        assert!(matches!(
            FcmAuth::from_json(r#"{"type":"service_account","project_id":"p"}"#),
            Err(AccountError::Missing("private_key"))
        ));
        assert!(matches!(
            FcmAuth::from_json(
                r#"{"type":"service_account","project_id":"p","private_key":"x","client_email":"e","token_uri":"u"}"#
            ),
            Err(AccountError::Key(_))
        ));
    }

    #[test]
    fn form_escape_matches_the_spec() {
        assert_eq!(form_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }
}
