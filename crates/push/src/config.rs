//! The push gateways file (`waihu messages send --push FILE`):
//!
//! ```yaml
//! title: 外呼助手                 # notification title (default: the app name below)
//! default_platform: fcm          # for customers whose push_platform is not set
//! ttl_seconds: 86400
//! apns:
//!   endpoint: https://api.push.apple.com   # api.sandbox.push.apple.com for development
//!   key_file: AuthKey_ABC123DEFG.p8        # relative to this file
//!   key_id: ABC123DEFG
//!   team_id: DEF123GHIJ
//!   topic: com.example.shop                # the app's bundle id
//! fcm:
//!   service_account_file: shop-app-firebase.json
//! webhook:
//!   url: https://push.internal.example/waihu
//!   secret_env: WAIHU_PUSH_WEBHOOK_SECRET  # never the secret itself
//! ```
//!
//! Each gateway may also name `ca_file` (a PEM CA to trust instead of the public roots:
//! an in-house gateway, or the tests' local peers). Secrets never sit in the YAML: keys
//! are files, the webhook secret comes from the environment or `secret_file`.
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Platform;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}:{line}:{column}: {message}")]
    Yaml {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {field}: {message}")]
    Field {
        file: String,
        field: String,
        message: String,
    },
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    title: Option<String>,
    default_platform: Option<String>,
    ttl_seconds: Option<u64>,
    apns: Option<ApnsFile>,
    fcm: Option<FcmFile>,
    webhook: Option<WebhookFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApnsFile {
    endpoint: Option<String>,
    key_file: PathBuf,
    key_id: String,
    team_id: String,
    topic: String,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FcmFile {
    endpoint: Option<String>,
    service_account_file: PathBuf,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFile {
    url: String,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    secret: Option<String>,
    ca_file: Option<PathBuf>,
}

/// The gateways, with keys read and validated.
#[derive(Debug, Clone)]
pub struct PushConfig {
    pub title: String,
    pub default_platform: Option<Platform>,
    pub ttl: std::time::Duration,
    pub apns: Option<ApnsConfig>,
    pub fcm: Option<FcmConfig>,
    pub webhook: Option<WebhookConfig>,
}

#[derive(Debug, Clone)]
pub struct ApnsConfig {
    pub endpoint: String,
    pub key_pem: String,
    pub key_id: String,
    pub team_id: String,
    pub topic: String,
    pub ca_pem: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FcmConfig {
    pub endpoint: String,
    pub service_account_json: String,
    pub ca_pem: Option<String>,
}

#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: Vec<u8>,
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PushConfig {
    /// Reads the file and everything it names; every problem names the file and field.
    pub fn load(path: &Path) -> Result<PushConfig, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: name.clone(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &name, dir, |k| std::env::var(k).ok())
    }

    /// Parses `text` (named `file` in errors), reading referenced files relative to `dir`
    /// and environment variables through `env`.
    pub fn parse(
        text: &str,
        file: &str,
        dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<PushConfig, ConfigError> {
        let f: File = serde_norway::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            let message = e.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_string();
            ConfigError::Yaml {
                file: file.into(),
                line,
                column,
                message,
            }
        })?;
        let bad = |field: &str, message: String| ConfigError::Field {
            file: file.into(),
            field: field.into(),
            message,
        };
        let read = |field: &str, p: &Path| -> Result<String, ConfigError> {
            let full = dir.join(p);
            std::fs::read_to_string(&full)
                .map_err(|e| bad(field, format!("cannot read {}: {e}", full.display())))
        };
        let ca = |field: &str, p: &Option<PathBuf>| -> Result<Option<String>, ConfigError> {
            p.as_ref().map(|p| read(field, p)).transpose()
        };
        let default_platform = match &f.default_platform {
            None => None,
            Some(s) => Some(Platform::parse(s).ok_or_else(|| {
                bad(
                    "default_platform",
                    format!("'{s}': use apns, fcm or webhook"),
                )
            })?),
        };
        let apns = match &f.apns {
            None => None,
            Some(a) => {
                let key_pem = read("apns.key_file", &a.key_file)?;
                crate::apns::ApnsAuth::from_p8(&key_pem, &a.key_id, &a.team_id)
                    .map_err(|e| bad("apns.key_file", e.to_string()))?;
                if a.topic.trim().is_empty() {
                    return Err(bad("apns.topic", "the app's bundle id is needed".into()));
                }
                Some(ApnsConfig {
                    endpoint: a
                        .endpoint
                        .clone()
                        .unwrap_or_else(|| crate::apns::PRODUCTION.into()),
                    key_pem,
                    key_id: a.key_id.clone(),
                    team_id: a.team_id.clone(),
                    topic: a.topic.trim().to_string(),
                    ca_pem: ca("apns.ca_file", &a.ca_file)?,
                })
            }
        };
        let fcm = match &f.fcm {
            None => None,
            Some(c) => {
                let json = read("fcm.service_account_file", &c.service_account_file)?;
                crate::fcm::FcmAuth::from_json(&json)
                    .map_err(|e| bad("fcm.service_account_file", e.to_string()))?;
                Some(FcmConfig {
                    endpoint: c
                        .endpoint
                        .clone()
                        .unwrap_or_else(|| crate::fcm::ENDPOINT.into()),
                    service_account_json: json,
                    ca_pem: ca("fcm.ca_file", &c.ca_file)?,
                })
            }
        };
        let webhook = match &f.webhook {
            None => None,
            Some(w) => {
                if w.secret.is_some() {
                    return Err(bad(
                        "webhook.secret",
                        "secrets do not go in the file: use secret_env or secret_file".into(),
                    ));
                }
                let secret = match (&w.secret_env, &w.secret_file) {
                    (Some(var), None) => env(var).ok_or_else(|| {
                        bad(
                            "webhook.secret_env",
                            format!("environment variable {var} is not set"),
                        )
                    })?,
                    (None, Some(p)) => read("webhook.secret_file", p)?.trim().to_string(),
                    _ => {
                        return Err(bad(
                            "webhook",
                            "name exactly one of secret_env and secret_file".into(),
                        ))
                    }
                };
                if secret.len() < 16 {
                    return Err(bad("webhook.secret", "at least 16 characters".into()));
                }
                if !(w.url.starts_with("https://") || w.url.starts_with("http://127.")) {
                    return Err(bad(
                        "webhook.url",
                        format!(
                            "'{}': https is required (plain http only on 127.0.0.0/8)",
                            w.url
                        ),
                    ));
                }
                Some(WebhookConfig {
                    url: w.url.clone(),
                    secret: secret.into_bytes(),
                    ca_pem: ca("webhook.ca_file", &w.ca_file)?,
                })
            }
        };
        if apns.is_none() && fcm.is_none() && webhook.is_none() {
            return Err(bad(
                "apns/fcm/webhook",
                "configure at least one gateway".into(),
            ));
        }
        Ok(PushConfig {
            title: f.title.unwrap_or_else(|| "通知 Notice".into()),
            default_platform,
            ttl: std::time::Duration::from_secs(f.ttl_seconds.unwrap_or(86_400).min(28 * 86_400)),
            apns,
            fcm,
            webhook,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PushConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), "0123456789abcdef0123\n").unwrap();
        PushConfig::parse(text, "push.yaml", dir.path(), |k| {
            (k == "SECRET").then(|| "from-the-environment-1234".to_string())
        })
    }

    #[test]
    fn webhook_secret_from_env_or_file() {
        let c = parse("webhook:\n  url: https://a.example/p\n  secret_env: SECRET\n").unwrap();
        assert_eq!(c.webhook.unwrap().secret, b"from-the-environment-1234");
        let c = parse("webhook:\n  url: https://a.example/p\n  secret_file: secret.txt\n").unwrap();
        assert_eq!(c.webhook.unwrap().secret, b"0123456789abcdef0123");
    }

    #[test]
    fn mistakes_name_file_line_and_field() {
        let e = parse("webhook:\n  url: https://a.example/p\n  secret: hunter2hunter2hunter2\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("push.yaml: webhook.secret:"), "{e}");
        let e = parse("webhook:\n  url: https://a\n  sekret_env: X\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("push.yaml:3:"), "{e}");
        assert!(e.contains("sekret_env"), "{e}");
        let e = parse("webhook:\n  url: http://evil.example/\n  secret_env: SECRET\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("webhook.url"), "{e}");
        let e = parse("webhook:\n  url: https://a/\n  secret_env: NOPE\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("NOPE is not set"), "{e}");
        let e = parse("title: x\n").unwrap_err().to_string();
        assert!(e.contains("at least one gateway"), "{e}");
        let e = parse("apns:\n  key_file: missing.p8\n  key_id: K\n  team_id: T\n  topic: a.b\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("push.yaml: apns.key_file: cannot read"),
            "{e}"
        );
        let e =
            parse("default_platform: pager\nwebhook:\n  url: https://a/\n  secret_env: SECRET\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("default_platform"), "{e}");
    }
}
