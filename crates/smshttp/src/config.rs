//! The HTTP SMS gateways file (`waihu messages send --sms-http sms-http.yaml`): which
//! aggregator each campaign's SMS go through, and the accounts. Secrets come from the
//! environment (`*_env`) or a file (`*_file`, relative to this file), never inline.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {field}: {message}")]
    Field {
        file: String,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayKind {
    Aliyun,
    Twilio,
}

impl GatewayKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayKind::Aliyun => "aliyun",
            GatewayKind::Twilio => "twilio",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    default: GatewayKind,
    #[serde(default)]
    campaigns: BTreeMap<String, GatewayKind>,
    #[serde(default)]
    aliyun: Option<AliyunFile>,
    #[serde(default)]
    twilio: Option<TwilioFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliyunFile {
    #[serde(default = "aliyun_endpoint")]
    endpoint: String,
    access_key_id: String,
    #[serde(default)]
    access_key_secret: Option<serde_norway::Value>,
    #[serde(default)]
    access_key_secret_env: Option<String>,
    #[serde(default)]
    access_key_secret_file: Option<String>,
    #[serde(default = "hangzhou")]
    region: String,
    sign_name: String,
    templates: BTreeMap<String, AliyunTemplate>,
    /// Where the receiver of pushed reports and replies binds (`127.0.0.1:8090`).
    #[serde(default)]
    push_listen: Option<String>,
    /// The secret token in the receiving paths (`/aliyun/<token>/SmsReport`, `…/SmsUp`).
    #[serde(default)]
    push_token: Option<serde_norway::Value>,
    #[serde(default)]
    push_token_env: Option<String>,
    #[serde(default)]
    push_token_file: Option<String>,
}

/// Our template → the approved Alibaba template and the variable that carries our text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliyunTemplate {
    pub code: String,
    #[serde(default = "content")]
    pub param: String,
}

fn aliyun_endpoint() -> String {
    "https://dysmsapi.aliyuncs.com".into()
}
fn hangzhou() -> String {
    "cn-hangzhou".into()
}
fn content() -> String {
    "content".into()
}
fn twilio_base() -> String {
    "https://api.twilio.com".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TwilioFile {
    #[serde(default = "twilio_base")]
    base_url: String,
    account_sid: String,
    #[serde(default)]
    auth_token: Option<serde_norway::Value>,
    #[serde(default)]
    auth_token_env: Option<String>,
    #[serde(default)]
    auth_token_file: Option<String>,
    from: String,
    /// The public URL Twilio posts statuses to (what the signature covers).
    #[serde(default)]
    status_callback: Option<String>,
    /// The public URL of the number's incoming-message webhook ("A message comes in"), which
    /// the signature of replies covers; served by the same listener.
    #[serde(default)]
    inbound_url: Option<String>,
    /// Where the status listener binds (`127.0.0.1:8089`).
    #[serde(default)]
    listen: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AliyunConfig {
    pub account: crate::aliyun::Account,
    pub sign_name: String,
    pub templates: BTreeMap<String, AliyunTemplate>,
    /// The push receiver (HTTP 批量推送): where it binds and its path token.
    pub push: Option<AliyunPush>,
}

#[derive(Debug, Clone)]
pub struct AliyunPush {
    pub listen: std::net::SocketAddr,
    pub token: String,
}

#[derive(Debug, Clone)]
pub struct TwilioConfig {
    pub account: crate::twilio::Account,
    pub listen: Option<std::net::SocketAddr>,
    /// The incoming-message webhook's public URL (replies, opt-outs).
    pub inbound_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SmsHttpConfig {
    pub default: GatewayKind,
    pub campaigns: BTreeMap<String, GatewayKind>,
    pub aliyun: Option<AliyunConfig>,
    pub twilio: Option<TwilioConfig>,
}

fn secret(
    file: &str,
    dir: &Path,
    field: &str,
    inline: &Option<serde_norway::Value>,
    env: &Option<String>,
    path: &Option<String>,
) -> Result<String, ConfigError> {
    let err = |message: String| ConfigError::Field {
        file: file.into(),
        field: field.into(),
        message,
    };
    if inline.is_some() {
        return Err(err(format!(
            "a secret is never written in this file: use {field}_env or {field}_file / 密钥不能写在配置文件里"
        )));
    }
    match (env, path) {
        (Some(v), None) => std::env::var(v)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err(format!("environment variable {v} is not set"))),
        (None, Some(p)) => {
            let p: PathBuf = dir.join(p);
            std::fs::read_to_string(&p)
                .map(|s| s.trim().to_string())
                .map_err(|e| err(format!("{}: {e}", p.display())))
        }
        _ => Err(err(format!(
            "give exactly one of {field}_env or {field}_file"
        ))),
    }
}

fn plain_http_ok(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://127.")
}

impl SmsHttpConfig {
    pub fn load(path: &Path) -> Result<SmsHttpConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Parse {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(
            &path.display().to_string(),
            path.parent().unwrap_or(Path::new(".")),
            &text,
        )
    }

    pub fn parse(file: &str, dir: &Path, text: &str) -> Result<SmsHttpConfig, ConfigError> {
        let f: File = serde_norway::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.into(),
            message: e.to_string(),
        })?;
        let field = |field: &str, message: String| ConfigError::Field {
            file: file.into(),
            field: field.into(),
            message,
        };
        let aliyun = match f.aliyun {
            Some(a) => {
                if !plain_http_ok(&a.endpoint) {
                    return Err(field(
                        "aliyun.endpoint",
                        "must be https:// (plain http only to 127.0.0.0/8)".into(),
                    ));
                }
                let s = secret(
                    file,
                    dir,
                    "aliyun.access_key_secret",
                    &a.access_key_secret,
                    &a.access_key_secret_env,
                    &a.access_key_secret_file,
                )?;
                let push = match a.push_listen.as_deref() {
                    Some(l) => {
                        let listen = l.parse().map_err(|_| {
                            field("aliyun.push_listen", format!("'{l}' is not host:port"))
                        })?;
                        let token = secret(
                            file,
                            dir,
                            "aliyun.push_token",
                            &a.push_token,
                            &a.push_token_env,
                            &a.push_token_file,
                        )?;
                        if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
                            return Err(field(
                                "aliyun.push_token",
                                "must be at least 16 letters or digits (it is the only thing \
                                 that keeps forged reports out) / 至少16位字母或数字"
                                    .into(),
                            ));
                        }
                        Some(AliyunPush { listen, token })
                    }
                    None if a.push_token.is_some()
                        || a.push_token_env.is_some()
                        || a.push_token_file.is_some() =>
                    {
                        return Err(field("aliyun.push_token", "goes with push_listen".into()))
                    }
                    None => None,
                };
                Some(AliyunConfig {
                    account: crate::aliyun::Account {
                        endpoint: a.endpoint,
                        access_key_id: a.access_key_id,
                        access_key_secret: s,
                        region: a.region,
                    },
                    sign_name: a.sign_name,
                    templates: a.templates,
                    push,
                })
            }
            None => None,
        };
        let twilio = match f.twilio {
            Some(t) => {
                if !plain_http_ok(&t.base_url) {
                    return Err(field(
                        "twilio.base_url",
                        "must be https:// (plain http only to 127.0.0.0/8)".into(),
                    ));
                }
                let tok = secret(
                    file,
                    dir,
                    "twilio.auth_token",
                    &t.auth_token,
                    &t.auth_token_env,
                    &t.auth_token_file,
                )?;
                let listen = t
                    .listen
                    .as_deref()
                    .map(|l| {
                        l.parse()
                            .map_err(|_| field("twilio.listen", format!("'{l}' is not host:port")))
                    })
                    .transpose()?;
                let served = t.status_callback.is_some() || t.inbound_url.is_some();
                if listen.is_some() != served {
                    return Err(field(
                        "twilio",
                        "listen goes with status_callback and/or inbound_url".into(),
                    ));
                }
                let path = |u: &Option<String>| u.as_deref().map(crate::client::url_path);
                if served && path(&t.status_callback) == path(&t.inbound_url) {
                    return Err(field(
                        "twilio.inbound_url",
                        "must differ from status_callback in its path".into(),
                    ));
                }
                Some(TwilioConfig {
                    account: crate::twilio::Account {
                        base_url: t.base_url,
                        account_sid: t.account_sid,
                        auth_token: tok,
                        from: t.from,
                        status_callback: t.status_callback,
                    },
                    listen,
                    inbound_url: t.inbound_url,
                })
            }
            None => None,
        };
        let cfg = SmsHttpConfig {
            default: f.default,
            campaigns: f.campaigns,
            aliyun,
            twilio,
        };
        for (name, g) in std::iter::once(("default".to_string(), cfg.default)).chain(
            cfg.campaigns
                .iter()
                .map(|(n, g)| (format!("campaigns.{n}"), *g)),
        ) {
            let present = match g {
                GatewayKind::Aliyun => cfg.aliyun.is_some(),
                GatewayKind::Twilio => cfg.twilio.is_some(),
            };
            if !present {
                return Err(field(
                    &name,
                    format!("{} is not configured in this file", g.as_str()),
                ));
            }
        }
        Ok(cfg)
    }

    /// The gateway for a campaign (by name; None: a message of no campaign).
    pub fn gateway_for(&self, campaign: Option<&str>) -> GatewayKind {
        campaign
            .and_then(|c| self.campaigns.get(c).copied())
            .unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_incoming_message_webhook_needs_the_listener_and_its_own_path() {
        let dir = std::env::temp_dir();
        std::env::set_var("WAIHU_TEST_TWILIO_TOKEN_IN", "tok");
        let base = "default: twilio\ntwilio:\n  account_sid: AC1\n  auth_token_env: WAIHU_TEST_TWILIO_TOKEN_IN\n  from: x\n";
        let ok =
            format!("{base}  inbound_url: https://h.example/twilio/in\n  listen: 127.0.0.1:8089\n");
        let c = SmsHttpConfig::parse("s.yaml", &dir, &ok).unwrap();
        assert_eq!(
            c.twilio.unwrap().inbound_url.as_deref(),
            Some("https://h.example/twilio/in")
        );
        let no_listen = format!("{base}  inbound_url: https://h.example/twilio/in\n");
        let e = SmsHttpConfig::parse("s.yaml", &dir, &no_listen)
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen goes with"), "{e}");
        let same = format!(
            "{base}  inbound_url: https://h.example/t?a=1\n  status_callback: https://h.example/t\n  listen: 127.0.0.1:8089\n"
        );
        let e = SmsHttpConfig::parse("s.yaml", &dir, &same)
            .unwrap_err()
            .to_string();
        assert!(e.contains("twilio.inbound_url"), "{e}");
    }

    #[test]
    fn the_alibaba_push_receiver_needs_a_listen_address_and_a_strong_token() {
        let dir = std::env::temp_dir();
        std::env::set_var("WAIHU_TEST_ALIYUN_SECRET_P", "sec");
        std::env::set_var("WAIHU_TEST_ALIYUN_PUSH_OK", "abcdefgh12345678");
        std::env::set_var("WAIHU_TEST_ALIYUN_PUSH_SHORT", "abc");
        let base = "default: aliyun\naliyun:\n  access_key_id: LTAI\n  access_key_secret_env: WAIHU_TEST_ALIYUN_SECRET_P\n  sign_name: 外呼\n  templates: {}\n";
        let ok = format!(
            "{base}  push_listen: 127.0.0.1:8090\n  push_token_env: WAIHU_TEST_ALIYUN_PUSH_OK\n"
        );
        let p = SmsHttpConfig::parse("s.yaml", &dir, &ok)
            .unwrap()
            .aliyun
            .unwrap()
            .push
            .unwrap();
        assert_eq!(
            (p.listen.port(), p.token.as_str()),
            (8090, "abcdefgh12345678")
        );
        let short = format!(
            "{base}  push_listen: 127.0.0.1:8090\n  push_token_env: WAIHU_TEST_ALIYUN_PUSH_SHORT\n"
        );
        let e = SmsHttpConfig::parse("s.yaml", &dir, &short)
            .unwrap_err()
            .to_string();
        assert!(e.contains("aliyun.push_token") && e.contains("16"), "{e}");
        let inline =
            format!("{base}  push_listen: 127.0.0.1:8090\n  push_token: abcdefgh12345678\n");
        let e = SmsHttpConfig::parse("s.yaml", &dir, &inline)
            .unwrap_err()
            .to_string();
        assert!(e.contains("never"), "{e}");
        let alone = format!("{base}  push_token_env: WAIHU_TEST_ALIYUN_PUSH_OK\n");
        let e = SmsHttpConfig::parse("s.yaml", &dir, &alone)
            .unwrap_err()
            .to_string();
        assert!(e.contains("goes with push_listen"), "{e}");
        let bad =
            format!("{base}  push_listen: nowhere\n  push_token_env: WAIHU_TEST_ALIYUN_PUSH_OK\n");
        let e = SmsHttpConfig::parse("s.yaml", &dir, &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("aliyun.push_listen"), "{e}");
    }

    #[test]
    fn secrets_come_from_env_or_file_never_inline() {
        let dir = std::env::temp_dir();
        std::env::set_var("WAIHU_TEST_TWILIO_TOKEN_CFG", "tok");
        let ok = "default: twilio\ntwilio:\n  account_sid: AC1\n  auth_token_env: WAIHU_TEST_TWILIO_TOKEN_CFG\n  from: \"+15005550006\"\n";
        let c = SmsHttpConfig::parse("s.yaml", &dir, ok).unwrap();
        assert_eq!(c.twilio.unwrap().account.auth_token, "tok");
        let inline = "default: twilio\ntwilio:\n  account_sid: AC1\n  auth_token: tok\n  from: x\n";
        let e = SmsHttpConfig::parse("s.yaml", &dir, inline)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("twilio.auth_token") && e.contains("never"),
            "{e}"
        );
        let missing = "default: aliyun\ntwilio:\n  account_sid: AC1\n  auth_token_env: WAIHU_TEST_TWILIO_TOKEN_CFG\n  from: x\n";
        let e = SmsHttpConfig::parse("s.yaml", &dir, missing)
            .unwrap_err()
            .to_string();
        assert!(e.contains("default: aliyun is not configured"), "{e}");
        let typo = "default: twilio\ntwilo: {}\n";
        let e = SmsHttpConfig::parse("s.yaml", &dir, typo)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        let http = "default: twilio\ntwilio:\n  base_url: http://api.twilio.com\n  account_sid: AC1\n  auth_token_env: WAIHU_TEST_TWILIO_TOKEN_CFG\n  from: x\n";
        let e = SmsHttpConfig::parse("s.yaml", &dir, http)
            .unwrap_err()
            .to_string();
        assert!(e.contains("twilio.base_url"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,300}") {
            let _ = SmsHttpConfig::parse("s.yaml", Path::new("."), &s);
        }
    }
}
