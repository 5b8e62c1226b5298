//! Alibaba Cloud SMS (`dysmsapi.aliyuncs.com`, API version 2017-05-25), RPC style.
//!
//! Signature (the documented "signature method" for RPC APIs):
//! 1. every parameter except `Signature`, sorted by name, each name and value
//!    percent-encoded (RFC 3986: only `A-Z a-z 0-9 - _ . ~` stay as they are; space is
//!    `%20`, `*` is `%2A`, `~` stays), joined as `name=value` with `&`: the canonicalised
//!    query string;
//! 2. `StringToSign = METHOD & percentEncode("/") & percentEncode(canonicalised)`;
//! 3. `Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))`.
//!
//! Common parameters: `AccessKeyId`, `Action`, `Format=JSON`, `RegionId`,
//! `SignatureMethod=HMAC-SHA1`, `SignatureNonce` (unique per request), `SignatureVersion=1.0`,
//! `Timestamp` (UTC, `YYYY-MM-DDThh:mm:ssZ`), `Version=2017-05-25`. `SendSms` adds
//! `PhoneNumbers`, `SignName`, `TemplateCode`, `TemplateParam` (a JSON object of the
//! template's variables) and `OutId` (ours: the message key). The answer is JSON with `Code`
//! (`OK` or an error code), `Message`, `RequestId` and, on success, `BizId`.
//!
//! Delivery reports are pulled with `QuerySendDetails` (`PhoneNumber`, `BizId`, `SendDate`
//! `yyyyMMdd`, `PageSize`, `CurrentPage`): each `SmsSendDetailDTO` has `SendStatus` 1 (waiting
//! for the receipt), 2 (failed, with `ErrCode`) or 3 (delivered).
//!
//! Or they are pushed ("HTTP 批量推送", configured in the console): the service POSTs a
//! JSON array to the receiving URL — `SmsReport` items (`phone_number`, `send_time`,
//! `report_time`, `success`, `err_code`, `err_msg`, `sms_size`, `biz_id`, `out_id`) and
//! `SmsUp` items, replies from handsets (`phone_number`, `send_time`, `content`,
//! `sign_name`, `dest_code`, `sequence_id`) — and expects HTTP 200 with
//! `{"code":0,"msg":"接收成功"}`; anything else is pushed again 1, 5 and 10 minutes later.
//! The push carries no signature, so the receiving path holds a secret token.
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use sha1::Sha1;

use crate::{status_class, HttpRequest, Outcome, Receipt};

pub const VERSION: &str = "2017-05-25";

/// RFC 3986 unreserved characters stay; everything else is `%XX` (UTF-8).
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// The sorted, encoded `name=value&...` string (without `Signature`).
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut p: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "Signature").collect();
    p.sort_by(|a, b| a.0.cmp(&b.0));
    p.iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn string_to_sign(method: &str, params: &[(String, String)]) -> String {
    format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    )
}

pub fn signature(secret: &str, method: &str, params: &[(String, String)]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes())
        .expect("HMAC takes any key length");
    mac.update(string_to_sign(method, params).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a request's `Signature` as the service does (constant time).
pub fn verify(secret: &str, method: &str, params: &[(String, String)]) -> bool {
    let Some((_, given)) = params.iter().find(|(k, _)| k == "Signature") else {
        return false;
    };
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(given) else {
        return false;
    };
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes())
        .expect("HMAC takes any key length");
    mac.update(string_to_sign(method, params).as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// Account and endpoint.
#[derive(Debug, Clone)]
pub struct Account {
    /// `https://dysmsapi.aliyuncs.com` (or a local peer).
    pub endpoint: String,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub region: String,
}

fn common(a: &Account, action: &str, nonce: &str, now: DateTime<Utc>) -> Vec<(String, String)> {
    [
        ("AccessKeyId", a.access_key_id.as_str()),
        ("Action", action),
        ("Format", "JSON"),
        ("RegionId", a.region.as_str()),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", nonce),
        ("SignatureVersion", "1.0"),
        ("Version", VERSION),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([(
        "Timestamp".to_string(),
        now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )])
    .collect()
}

fn signed_post(a: &Account, mut params: Vec<(String, String)>) -> HttpRequest {
    let sig = signature(&a.access_key_secret, "POST", &params);
    params.push(("Signature".into(), sig));
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    HttpRequest {
        method: "POST",
        url: format!("{}/", a.endpoint.trim_end_matches('/')),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body,
    }
}

/// One SMS to send.
#[derive(Debug, Clone)]
pub struct Send<'a> {
    /// Mainland numbers without `+86`; others with the country code, no `+`.
    pub phone: &'a str,
    pub sign_name: &'a str,
    pub template_code: &'a str,
    /// The template's variables, a JSON object.
    pub template_param: &'a str,
    pub out_id: &'a str,
}

/// The number as `PhoneNumbers` wants it: mainland numbers without the country code
/// (`+8613800000001` → `13800000001`), others with it and no `+` (`12125550123`).
pub fn phone_param(e164: &str) -> String {
    let d = e164.trim_start_matches('+');
    d.strip_prefix("86").unwrap_or(d).to_string()
}

pub fn send_request(a: &Account, m: &Send<'_>, nonce: &str, now: DateTime<Utc>) -> HttpRequest {
    let mut p = common(a, "SendSms", nonce, now);
    p.extend(
        [
            ("PhoneNumbers", m.phone),
            ("SignName", m.sign_name),
            ("TemplateCode", m.template_code),
            ("TemplateParam", m.template_param),
            ("OutId", m.out_id),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    signed_post(a, p)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendAnswer {
    code: Option<String>,
    message: Option<String>,
    biz_id: Option<String>,
}

/// Codes that mean the credentials or signature were refused.
const AUTH_CODES: [&str; 5] = [
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId.NotFound",
    "InvalidAccessKeyId.Inactive",
    "IncompleteSignature",
    "SignatureNonceUsed",
];

/// `SendSms` status and body → outcome.
pub fn map_send(status: u16, body: &str) -> Outcome {
    let parsed: Option<SendAnswer> = serde_json::from_str(body).ok();
    let Some(a) = parsed else {
        return status_class(status).unwrap_or(Outcome::Unknown {
            reason: format!("HTTP {status} with an unreadable body"),
        });
    };
    let code = a.code.unwrap_or_default();
    let message = a.message.unwrap_or_default();
    if code == "OK" {
        return match a.biz_id {
            Some(id) if !id.is_empty() => Outcome::Accepted { id },
            _ => Outcome::Unknown {
                reason: "Code OK without a BizId".into(),
            },
        };
    }
    let reason = format!("{code}: {message}");
    if AUTH_CODES.contains(&code.as_str()) {
        Outcome::AuthFailed { reason }
    } else if code == "isv.BUSINESS_LIMIT_CONTROL" || code == "Throttling.User" {
        Outcome::RetryLater { reason }
    } else if let Some(o) = status_class(status) {
        o
    } else {
        Outcome::Rejected { reason }
    }
}

pub fn query_request(
    a: &Account,
    phone: &str,
    biz_id: &str,
    send_date: &str,
    nonce: &str,
    now: DateTime<Utc>,
) -> HttpRequest {
    let mut p = common(a, "QuerySendDetails", nonce, now);
    p.extend(
        [
            ("PhoneNumber", phone),
            ("BizId", biz_id),
            ("SendDate", send_date),
            ("PageSize", "10"),
            ("CurrentPage", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    signed_post(a, p)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueryAnswer {
    code: Option<String>,
    message: Option<String>,
    sms_send_detail_d_t_os: Option<Dtos>,
}

#[derive(Deserialize)]
struct Dtos {
    #[serde(rename = "SmsSendDetailDTO", default)]
    list: Vec<Dto>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Dto {
    send_status: i64,
    #[serde(default)]
    err_code: Option<String>,
}

/// `QuerySendDetails` answer → the final receipt for `biz_id`, if there is one yet
/// (`Ok(None)`: still waiting); `Err`: the service refused the query.
pub fn map_query(biz_id: &str, body: &str) -> Result<Option<Receipt>, String> {
    let a: QueryAnswer =
        serde_json::from_str(body).map_err(|e| format!("unreadable answer: {e}"))?;
    let code = a.code.unwrap_or_default();
    if code != "OK" {
        return Err(format!("{code}: {}", a.message.unwrap_or_default()));
    }
    let Some(d) = a
        .sms_send_detail_d_t_os
        .and_then(|d| d.list.into_iter().next())
    else {
        return Ok(None);
    };
    Ok(match d.send_status {
        3 => Some(Receipt {
            id: biz_id.into(),
            delivered: true,
            stat: d.err_code.unwrap_or_else(|| "DELIVERED".into()),
        }),
        2 => Some(Receipt {
            id: biz_id.into(),
            delivered: false,
            stat: d.err_code.unwrap_or_else(|| "FAILED".into()),
        }),
        _ => None,
    })
}

#[derive(Deserialize)]
struct ReportItem {
    #[serde(default)]
    phone_number: String,
    success: bool,
    #[serde(default)]
    err_code: Option<String>,
    biz_id: String,
}

#[derive(Deserialize)]
struct UpItem {
    phone_number: String,
    content: String,
    #[serde(default)]
    dest_code: Option<String>,
    #[serde(default)]
    sequence_id: Option<serde_json::Value>,
}

/// A pushed `SmsReport` body → one receipt per item (keyed by `biz_id`, the `BizId` the send
/// returned). `Err` names what is wrong; then nothing in the body is taken.
pub fn push_reports(body: &str) -> Result<Vec<Receipt>, String> {
    let items: Vec<ReportItem> = serde_json::from_str(body)
        .map_err(|e| format!("SmsReport is not the documented JSON array: {e}"))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            if r.biz_id.is_empty() {
                return Err(format!(
                    "SmsReport item {i} ({}): empty biz_id",
                    r.phone_number
                ));
            }
            Ok(Receipt {
                id: r.biz_id,
                delivered: r.success,
                stat: r
                    .err_code
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| if r.success { "DELIVERED" } else { "FAILED" }.into()),
            })
        })
        .collect()
}

/// A pushed `SmsUp` body → the replies, numbers as E.164 (mainland numbers come without
/// `+86`).
pub fn push_replies(body: &str) -> Result<Vec<crate::twilio::Inbound>, String> {
    let items: Vec<UpItem> = serde_json::from_str(body)
        .map_err(|e| format!("SmsUp is not the documented JSON array: {e}"))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            let from = e164(&u.phone_number).ok_or_else(|| {
                format!(
                    "SmsUp item {i}: phone_number {:?} is not a number",
                    u.phone_number
                )
            })?;
            Ok(crate::twilio::Inbound {
                sid: u
                    .sequence_id
                    .map(|v| v.to_string().trim_matches('"').to_string())
                    .unwrap_or_default(),
                from,
                to: u.dest_code.unwrap_or_default(),
                body: u.content,
            })
        })
        .collect()
}

/// `13800000001` → `+8613800000001`; `8613800000001` and `+…` are taken as international.
fn e164(n: &str) -> Option<String> {
    let t = n.trim();
    let digits = t.strip_prefix('+').unwrap_or(t);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(if t.starts_with('+') {
        t.to_string()
    } else if digits.len() == 11 && digits.starts_with('1') {
        format!("+86{digits}")
    } else {
        format!("+{digits}")
    })
}

/// The answer the push service wants for an accepted body.
pub const PUSH_OK: &str = r#"{"code":0,"msg":"接收成功"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_reports_and_replies_follow_the_documented_json() {
        // The documentation's SmsReport example, with a failure added.
        let body = r#"[{"phone_number":"1381111****","send_time":"2017-01-01 00:00:00","report_time":"2017-01-01 00:00:00","success":true,"err_code":"DELIVERED","err_msg":"用户接收成功","sms_size":"1","biz_id":"12345","out_id":"67890"},
            {"phone_number":"13800000002","success":false,"err_code":"MK:0001","biz_id":"777"}]"#;
        assert_eq!(
            push_reports(body).unwrap(),
            vec![
                Receipt {
                    id: "12345".into(),
                    delivered: true,
                    stat: "DELIVERED".into()
                },
                Receipt {
                    id: "777".into(),
                    delivered: false,
                    stat: "MK:0001".into()
                },
            ]
        );
        let e = push_reports(r#"[{"success":true,"biz_id":""}]"#).unwrap_err();
        assert!(e.contains("item 0") && e.contains("biz_id"), "{e}");
        assert!(push_reports("{}").unwrap_err().contains("SmsReport"));
        let up = r#"[{"phone_number":"13800000001","send_time":"2017-02-02 06:09:00","content":"退订","sign_name":"外呼","dest_code":"1234","sequence_id":1234567890}]"#;
        let r = push_replies(up).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].from.as_str(), r[0].body.as_str(), r[0].sid.as_str()),
            ("+8613800000001", "退订", "1234567890")
        );
        let e = push_replies(r#"[{"phone_number":"abc","content":"TD"}]"#).unwrap_err();
        assert!(e.contains("item 0"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn push_parsing_never_panics(s in "\\PC{0,200}") {
            let _ = push_reports(&s);
            let _ = push_replies(&s);
        }
    }

    fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn percent_encoding_is_rfc3986() {
        assert_eq!(percent_encode("a b*c~d/e"), "a%20b%2Ac~d%2Fe");
        assert_eq!(
            percent_encode("【外呼】"),
            "%E3%80%90%E5%A4%96%E5%91%BC%E3%80%91"
        );
        assert_eq!(
            percent_encode("{\"code\":\"1\"}"),
            "%7B%22code%22%3A%221%22%7D"
        );
    }

    #[test]
    fn the_string_to_sign_is_sorted_and_encoded_twice() {
        let params = p(&[
            ("Timestamp", "2026-12-04T10:00:00Z"),
            ("Action", "SendSms"),
            ("Signature", "x"),
        ]);
        assert_eq!(
            string_to_sign("POST", &params),
            "POST&%2F&Action%3DSendSms%26Timestamp%3D2026-12-04T10%253A00%253A00Z"
        );
    }

    #[test]
    fn a_built_request_verifies_and_a_wrong_secret_does_not() {
        let a = Account {
            endpoint: "http://127.0.0.1:1".into(),
            access_key_id: "LTAI-test".into(),
            access_key_secret: "s3cret".into(),
            region: "cn-hangzhou".into(),
        };
        let now = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = send_request(
            &a,
            &Send {
                phone: "13800000001",
                sign_name: "外呼",
                template_code: "SMS_1",
                template_param: "{\"content\":\"您好 a+b\"}",
                out_id: "fallback:1",
            },
            "nonce-1",
            now,
        );
        let params: Vec<(String, String)> = form_urlencoded::parse(r.body.as_bytes())
            .into_owned()
            .collect();
        assert!(verify("s3cret", "POST", &params));
        assert!(!verify("wrong", "POST", &params));
        assert!(!verify("s3cret", "GET", &params));
        assert!(params
            .iter()
            .any(|(k, v)| k == "Timestamp" && v == "2026-12-04T10:00:00Z"));
    }

    #[test]
    fn answers_map_to_outcomes() {
        assert_eq!(
            map_send(
                200,
                r#"{"Message":"OK","RequestId":"r","BizId":"900619746936498440^0","Code":"OK"}"#
            ),
            Outcome::Accepted {
                id: "900619746936498440^0".into()
            }
        );
        assert!(matches!(
            map_send(
                400,
                r#"{"Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation."}"#
            ),
            Outcome::AuthFailed { .. }
        ));
        assert!(matches!(
            map_send(
                200,
                r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发流控"}"#
            ),
            Outcome::RetryLater { .. }
        ));
        assert!(matches!(
            map_send(
                200,
                r#"{"Code":"isv.MOBILE_NUMBER_ILLEGAL","Message":"非法手机号"}"#
            ),
            Outcome::Rejected { .. }
        ));
        assert!(matches!(
            map_send(503, "<html>"),
            Outcome::RetryLater { .. }
        ));
        assert!(matches!(map_send(200, "garbage"), Outcome::Unknown { .. }));
        let q = r#"{"Code":"OK","Message":"OK","TotalCount":1,"SmsSendDetailDTOs":{"SmsSendDetailDTO":[{"SendStatus":3,"ErrCode":"DELIVERED","PhoneNum":"13800000001"}]}}"#;
        assert_eq!(
            map_query("b", q).unwrap(),
            Some(Receipt {
                id: "b".into(),
                delivered: true,
                stat: "DELIVERED".into()
            })
        );
        let q = r#"{"Code":"OK","SmsSendDetailDTOs":{"SmsSendDetailDTO":[{"SendStatus":2,"ErrCode":"MK:0001"}]}}"#;
        assert!(!map_query("b", q).unwrap().unwrap().delivered);
        let q = r#"{"Code":"OK","SmsSendDetailDTOs":{"SmsSendDetailDTO":[{"SendStatus":1}]}}"#;
        assert_eq!(map_query("b", q).unwrap(), None);
    }

    proptest::proptest! {
        #[test]
        fn mappers_never_panic(status in 0u16..700, body in "\\PC{0,200}") {
            let _ = map_send(status, &body);
            let _ = map_query("b", &body);
        }

        #[test]
        fn any_params_sign_and_verify(params in proptest::collection::vec(("[A-Za-z]{1,8}", "\\PC{0,20}"), 0..8), secret in "[ -~]{1,30}") {
            let mut params: Vec<(String, String)> = params;
            let s = signature(&secret, "POST", &params);
            params.push(("Signature".into(), s));
            proptest::prop_assert!(verify(&secret, "POST", &params));
        }
    }
}
