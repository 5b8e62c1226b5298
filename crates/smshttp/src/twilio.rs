//! Twilio Programmable Messaging.
//!
//! Send: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic auth
//! (`AccountSid:AuthToken`), form body `To`, `From`, `Body` and `StatusCallback`. The answer
//! is the Message resource as JSON (`sid`, `status`, ...) with 201, or an error object
//! (`code`, `message`, `status`): 401/20003 bad credentials, 400/21211 invalid `To`, 429/20429
//! too many requests.
//!
//! Status callbacks: Twilio POSTs a form (`MessageSid`, `MessageStatus` = `queued` |
//! `sending` | `sent` | `delivered` | `undelivered` | `failed`, `ErrorCode`, ...) to the
//! `StatusCallback` URL with `X-Twilio-Signature = Base64(HMAC-SHA1(AuthToken, URL +
//! concat(sorted(name + value))))`, URL being the full URL Twilio called. A callback whose
//! signature does not verify is refused (403) and changes nothing.
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;

use crate::{status_class, HttpRequest, Outcome, Receipt};

#[derive(Debug, Clone)]
pub struct Account {
    /// `https://api.twilio.com` (or a local peer).
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// Sender: a Twilio number in E.164 or an alphanumeric sender id.
    pub from: String,
    /// Where delivery statuses are posted (our listener's public URL).
    pub status_callback: Option<String>,
}

pub fn send_request(a: &Account, to: &str, body: &str) -> HttpRequest {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("To", to)
        .append_pair("From", &a.from)
        .append_pair("Body", body);
    if let Some(cb) = &a.status_callback {
        form.append_pair("StatusCallback", cb);
    }
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", a.account_sid, a.auth_token));
    HttpRequest {
        method: "POST",
        url: format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            a.base_url.trim_end_matches('/'),
            a.account_sid
        ),
        headers: vec![
            ("authorization".into(), format!("Basic {basic}")),
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
        ],
        body: form.finish(),
    }
}

#[derive(Deserialize)]
struct Answer {
    sid: Option<String>,
    code: Option<i64>,
    message: Option<String>,
}

pub fn map_send(status: u16, body: &str) -> Outcome {
    let a: Option<Answer> = serde_json::from_str(body).ok();
    match (status, a) {
        (200..=299, Some(Answer { sid: Some(sid), .. })) if !sid.is_empty() => {
            Outcome::Accepted { id: sid }
        }
        (200..=299, _) => Outcome::Unknown {
            reason: format!("HTTP {status} without a message sid"),
        },
        (401 | 403, a) => Outcome::AuthFailed {
            reason: a
                .map(|a| {
                    format!(
                        "{}: {}",
                        a.code.unwrap_or(20003),
                        a.message.unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| format!("HTTP {status}")),
        },
        (s, a) => status_class(s).unwrap_or_else(|| Outcome::Rejected {
            reason: a
                .map(|a| format!("{}: {}", a.code.unwrap_or(0), a.message.unwrap_or_default()))
                .unwrap_or_else(|| format!("HTTP {s}")),
        }),
    }
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut p: Vec<&(String, String)> = params.iter().collect();
    p.sort();
    let mut m =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    m.update(url.as_bytes());
    for (k, v) in p {
        m.update(k.as_bytes());
        m.update(v.as_bytes());
    }
    m
}

/// The `X-Twilio-Signature` of a request to `url` with form `params`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Verifies `X-Twilio-Signature` (constant time).
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    mac(auth_token, url, params).verify_slice(&given).is_ok()
}

/// A message from a handset, as Twilio posts it to the number's incoming-message webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub sid: String,
    pub from: String,
    pub to: String,
    pub body: String,
}

/// An incoming-message webhook's form → the message (None: not one — no `From`, or a status).
pub fn inbound_message(params: &[(String, String)]) -> Option<Inbound> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("MessageStatus").is_some() {
        return None;
    }
    Some(Inbound {
        sid: get("MessageSid")
            .or_else(|| get("SmsSid"))
            .unwrap_or_default(),
        from: get("From").filter(|f| !f.is_empty())?,
        to: get("To").unwrap_or_default(),
        body: get("Body").unwrap_or_default(),
    })
}

/// A status callback's form → the final receipt (None: not final yet, `queued`/`sent`...).
pub fn callback_receipt(params: &[(String, String)]) -> Option<Receipt> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let id = get("MessageSid").or_else(|| get("SmsSid"))?;
    let status = get("MessageStatus").or_else(|| get("SmsStatus"))?;
    let delivered = match status {
        "delivered" | "read" => true,
        "undelivered" | "failed" => false,
        _ => return None,
    };
    let stat = match get("ErrorCode") {
        Some(c) if !c.is_empty() => format!("{status} {c}"),
        _ => status.to_string(),
    };
    Some(Receipt {
        id: id.into(),
        delivered,
        stat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// The example in Twilio's security documentation.
    #[test]
    fn the_documented_example_signature() {
        let params = p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature("12345", url, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(verify(
            "12345",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify(
            "12346",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify(
            "12345",
            "https://mycompany.com/myapp.php",
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }

    #[test]
    fn send_request_and_answers() {
        let a = Account {
            base_url: "http://127.0.0.1:9".into(),
            account_sid: "AC123".into(),
            auth_token: "tok".into(),
            from: "+15005550006".into(),
            status_callback: Some("http://127.0.0.1:8/twilio/status".into()),
        };
        let r = send_request(&a, "+12125550123", "Hi 您好 & bye");
        assert_eq!(
            r.url,
            "http://127.0.0.1:9/2010-04-01/Accounts/AC123/Messages.json"
        );
        assert!(r
            .headers
            .contains(&("authorization".into(), "Basic QUMxMjM6dG9r".into())));
        let form: Vec<(String, String)> = form_urlencoded::parse(r.body.as_bytes())
            .into_owned()
            .collect();
        assert!(form.contains(&("Body".into(), "Hi 您好 & bye".into())));
        assert_eq!(
            map_send(201, r#"{"sid":"SM1","status":"queued"}"#),
            Outcome::Accepted { id: "SM1".into() }
        );
        assert!(matches!(
            map_send(
                401,
                r#"{"code":20003,"message":"Authenticate","status":401}"#
            ),
            Outcome::AuthFailed { .. }
        ));
        assert!(matches!(
            map_send(
                400,
                r#"{"code":21211,"message":"Invalid 'To' Phone Number"}"#
            ),
            Outcome::Rejected { .. }
        ));
        assert!(matches!(
            map_send(429, r#"{"code":20429}"#),
            Outcome::RetryLater { .. }
        ));
        let cb = p(&[
            ("MessageSid", "SM1"),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30003"),
        ]);
        assert_eq!(
            callback_receipt(&cb),
            Some(Receipt {
                id: "SM1".into(),
                delivered: false,
                stat: "undelivered 30003".into()
            })
        );
        assert_eq!(
            callback_receipt(&p(&[("MessageSid", "SM1"), ("MessageStatus", "sent")])),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn mapping_and_verifying_never_panic(status in 0u16..700, body in "\\PC{0,200}", header in "\\PC{0,40}") {
            let _ = map_send(status, &body);
            let params: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
            let _ = verify("t", "http://x/", &params, &header);
            let _ = callback_receipt(&params);
            let _ = inbound_message(&params);
        }
    }

    #[test]
    fn incoming_messages_are_told_from_status_callbacks() {
        let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let m = inbound_message(&p(&[
            ("MessageSid", "SM1"),
            ("From", "+12125550123"),
            ("To", "+15005550006"),
            ("Body", "STOP"),
            ("SmsStatus", "received"),
        ]))
        .unwrap();
        assert_eq!(
            (m.sid.as_str(), m.from.as_str(), m.body.as_str()),
            ("SM1", "+12125550123", "STOP")
        );
        assert_eq!(
            inbound_message(&p(&[
                ("MessageSid", "SM1"),
                ("MessageStatus", "delivered"),
                ("From", "+1")
            ])),
            None
        );
        assert_eq!(inbound_message(&p(&[("Body", "hi")])), None);
    }
}
