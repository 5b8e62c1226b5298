//! The agents file (`agents.yaml`): agents listed by SIP URI or registering
//! to waihu, the registrar's realm, and the queues scripts transfer to. Errors
//! name the file, line, column and field.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

pub(crate) const DEFAULT_WRAP_UP_S: u64 = 10;

/// One agent (a softphone reached by URI, or registering to waihu, or both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    pub id: String,
    /// `sip:user@host:port`. With `register` too: used while the agent has no
    /// live registration.
    #[serde(default)]
    pub uri: Option<String>,
    /// The agent's softphone registers to waihu (its registrar) as this user.
    #[serde(default)]
    pub register: Option<AgentRegister>,
    /// Languages (`zh`, `en`) and queue names the agent serves.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Starts paused (not taking calls).
    #[serde(default)]
    pub paused: bool,
    /// Display name spoken in nothing and shown in reports.
    #[serde(default)]
    pub name: Option<String>,
}

/// How an agent's softphone authenticates its REGISTER to waihu (digest).
/// The password comes from an environment variable or a secrets file (its
/// first line); an inline `password:` is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRegister {
    /// The SIP user (the AOR's user part: `sip:li@waihu-host`).
    pub user: String,
    #[serde(default)]
    pub password_env: Option<String>,
    /// Relative to the agents file's directory ([`Config::with_base`]).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_refuse_password", skip_serializing)]
    pub password: Option<String>,
}

fn de_refuse_password<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let _ = serde::de::IgnoredAny::deserialize(d)?;
    Err(serde::de::Error::custom(
        "an inline password is refused: use password_env (an environment variable) or password_file (a secrets file) / 不允许在配置中写明文密码，请用 password_env 或 password_file",
    ))
}

/// Where an agent's password is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
}

impl AgentRegister {
    /// The password's source (the parser made sure there is exactly one).
    pub fn source(&self) -> Option<PasswordSource> {
        match (&self.password_env, &self.password_file) {
            (Some(v), None) => Some(PasswordSource::Env(v.clone())),
            (None, Some(p)) => Some(PasswordSource::File(p.clone())),
            _ => None,
        }
    }
}

/// waihu as the agents' registrar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrarSpec {
    /// The digest realm (default `waihu`).
    #[serde(default = "d_realm")]
    pub realm: String,
    /// Digest algorithms offered, preferred first (default `[SHA-256, MD5]`;
    /// `[MD5]` for softphones that choke on SHA-256 challenges).
    #[serde(default = "d_algorithms")]
    pub algorithms: Vec<String>,
    /// Shortest registration accepted, seconds (default 60; shorter → 423).
    #[serde(default = "d_min_expires")]
    pub min_expires_s: u32,
    /// Longest registration granted, seconds (default 3600).
    #[serde(default = "d_max_expires")]
    pub max_expires_s: u32,
}

impl Default for RegistrarSpec {
    fn default() -> Self {
        RegistrarSpec {
            realm: d_realm(),
            algorithms: d_algorithms(),
            min_expires_s: d_min_expires(),
            max_expires_s: d_max_expires(),
        }
    }
}

fn d_realm() -> String {
    "waihu".into()
}
fn d_algorithms() -> Vec<String> {
    vec!["SHA-256".into(), "MD5".into()]
}
fn d_min_expires() -> u32 {
    60
}
fn d_max_expires() -> u32 {
    3600
}

/// A queue a script's `transfer: {queue: NAME}` names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    pub name: String,
    /// Skills an agent needs for this queue (besides the queue's name, which
    /// is required when this is empty).
    #[serde(default)]
    pub skills: Vec<String>,
    /// How long one agent rings before the next is tried.
    #[serde(default = "d_ring")]
    pub ring_timeout_s: u64,
    /// How long a caller waits for any agent before a callback is offered.
    #[serde(default = "d_wait")]
    pub wait_timeout_s: u64,
    /// After-call work before the agent is offered another call.
    #[serde(default = "d_wrap")]
    pub wrap_up_s: u64,
    /// Played to the caller while the agent rings (default: 请稍候… / please hold…).
    #[serde(default)]
    pub hold_prompt: Option<String>,
    /// When no agent came: the callback is scheduled this many minutes later.
    #[serde(default = "d_callback")]
    pub callback_after_min: u64,
}

fn d_ring() -> u64 {
    15
}
fn d_wait() -> u64 {
    45
}
fn d_wrap() -> u64 {
    DEFAULT_WRAP_UP_S
}
fn d_callback() -> u64 {
    30
}

impl QueueSpec {
    /// The skills an agent must have.
    pub fn required(&self) -> impl Iterator<Item = &str> {
        let own = self.skills.is_empty().then_some(self.name.as_str());
        own.into_iter()
            .chain(self.skills.iter().map(String::as_str))
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub agents: Vec<AgentSpec>,
    pub queues: Vec<QueueSpec>,
    /// waihu as the registrar of agents with `register:` (defaults apply when absent).
    #[serde(default)]
    pub registrar: Option<RegistrarSpec>,
}

/// A bad agents file: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {field}: {message}", match (line, column) { (Some(l), Some(c)) => format!(":{l}:{c}"), (Some(l), None) => format!(":{l}"), _ => String::new() })]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Field path, e.g. `agents[1].uri`.
    pub field: String,
    pub message: String,
}

/// The 1-based line of the first line of `text` containing `needle` after
/// `key:` (best effort, for semantic errors the YAML parser cannot place).
fn line_of(text: &str, key: &str, value: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.find(&format!("{key}:"))
                .is_some_and(|k| l[k..].contains(value))
        })
        .map(|i| i + 1)
}

impl Config {
    /// Parses and checks `text` (read from `file`, named in errors).
    pub fn from_yaml(text: &str, file: &str) -> Result<Config, ConfigError> {
        let de = serde_norway::Deserializer::from_str(text);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let loc = inner.location();
            let mut message = inner.to_string();
            if let Some(l) = &loc {
                let suffix = format!(" at line {} column {}", l.line(), l.column());
                if let Some(m) = message.strip_suffix(&suffix) {
                    message = m.to_string();
                }
            }
            if let Some(m) = message.strip_prefix(&format!("{path}: ")) {
                message = m.to_string();
            }
            ConfigError {
                file: file.into(),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                field: if path.is_empty() || path == "." {
                    "(document)".into()
                } else {
                    path
                },
                message,
            }
        })?;
        let bad = |field: String, key: &str, value: &str, message: String| ConfigError {
            file: file.into(),
            line: line_of(text, key, value),
            column: None,
            field,
            message,
        };
        for (i, a) in cfg.agents.iter().enumerate() {
            if a.id.trim().is_empty() {
                return Err(bad(
                    format!("agents[{i}].id"),
                    "id",
                    "",
                    "must not be empty / 坐席编号不能为空".into(),
                ));
            }
            if cfg.agents[..i].iter().any(|b| b.id == a.id) {
                return Err(bad(
                    format!("agents[{i}].id"),
                    "id",
                    &a.id,
                    format!("duplicate agent id {:?} / 坐席编号重复", a.id),
                ));
            }
            if let Some(uri) = &a.uri {
                let rest = uri.strip_prefix("sip:").unwrap_or("");
                if rest.is_empty() || rest.contains(char::is_whitespace) {
                    return Err(bad(
                        format!("agents[{i}].uri"),
                        "uri",
                        uri,
                        format!("{uri:?} is not a SIP URI (sip:user@host:port) / 不是SIP地址"),
                    ));
                }
            }
            let Some(r) = &a.register else {
                if a.uri.is_none() {
                    return Err(bad(
                        format!("agents[{i}]"),
                        "id",
                        &a.id,
                        "give uri: or register: (or both) / 须提供 uri 或 register".into(),
                    ));
                }
                continue;
            };
            if r.user.is_empty()
                || !r
                    .user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,".contains(&b))
            {
                return Err(bad(
                    format!("agents[{i}].register.user"),
                    "user",
                    &r.user,
                    format!(
                        "{:?} is not a SIP user name (letters, digits, -_.) / 不是有效的SIP用户名",
                        r.user
                    ),
                ));
            }
            if cfg.agents[..i]
                .iter()
                .any(|b| b.register.as_ref().is_some_and(|x| x.user == r.user))
            {
                return Err(bad(
                    format!("agents[{i}].register.user"),
                    "user",
                    &r.user,
                    format!("duplicate register user {:?} / 注册用户名重复", r.user),
                ));
            }
            match (&r.password_env, &r.password_file) {
                (Some(_), Some(_)) => {
                    return Err(bad(
                        format!("agents[{i}].register.password_file"),
                        "password_file",
                        "",
                        "give password_env or password_file, not both / 只能二选一".into(),
                    ))
                }
                (None, None) => return Err(bad(
                    format!("agents[{i}].register"),
                    "user",
                    &r.user,
                    "needs password_env or password_file / 须提供 password_env 或 password_file"
                        .into(),
                )),
                (Some(v), None) if v.trim().is_empty() => {
                    return Err(bad(
                        format!("agents[{i}].register.password_env"),
                        "password_env",
                        "",
                        "must name a variable / 须为变量名".into(),
                    ))
                }
                _ => {}
            }
        }
        if let Some(r) = &cfg.registrar {
            if r.realm.trim().is_empty() || r.realm.contains('"') {
                return Err(bad(
                    "registrar.realm".into(),
                    "realm",
                    &r.realm,
                    "must be a non-empty name without quotes / 域名不能为空或含引号".into(),
                ));
            }
            if r.algorithms.is_empty() {
                return Err(bad(
                    "registrar.algorithms".into(),
                    "algorithms",
                    "",
                    "name at least one of SHA-256, MD5 / 至少一种算法".into(),
                ));
            }
            for alg in &r.algorithms {
                if !["SHA-256", "MD5"]
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(alg))
                {
                    return Err(bad(
                        "registrar.algorithms".into(),
                        "algorithms",
                        alg,
                        format!("{alg:?}: expected SHA-256 or MD5 / 仅支持 SHA-256 或 MD5"),
                    ));
                }
            }
            if r.min_expires_s == 0 || r.min_expires_s > r.max_expires_s || r.max_expires_s > 86_400
            {
                return Err(bad(
                    "registrar.min_expires_s".into(),
                    "min_expires_s",
                    &r.min_expires_s.to_string(),
                    "need 1 <= min_expires_s <= max_expires_s <= 86400 / 有效期范围无效".into(),
                ));
            }
        }
        for (i, q) in cfg.queues.iter().enumerate() {
            if q.name.trim().is_empty() {
                return Err(bad(
                    format!("queues[{i}].name"),
                    "name",
                    "",
                    "must not be empty / 队列名不能为空".into(),
                ));
            }
            if cfg.queues[..i].iter().any(|b| b.name == q.name) {
                return Err(bad(
                    format!("queues[{i}].name"),
                    "name",
                    &q.name,
                    format!("duplicate queue {:?} / 队列重复", q.name),
                ));
            }
            for (field, v) in [
                ("ring_timeout_s", q.ring_timeout_s),
                ("wait_timeout_s", q.wait_timeout_s),
            ] {
                if v == 0 || v > 3600 {
                    return Err(bad(
                        format!("queues[{i}].{field}"),
                        field,
                        &v.to_string(),
                        "must be 1..3600 seconds / 须为1到3600秒".into(),
                    ));
                }
            }
            if q.wrap_up_s > 3600 {
                return Err(bad(
                    format!("queues[{i}].wrap_up_s"),
                    "wrap_up_s",
                    &q.wrap_up_s.to_string(),
                    "must be at most 3600 seconds / 最多3600秒".into(),
                ));
            }
            if q.callback_after_min == 0 || q.callback_after_min > 60 * 24 * 14 {
                return Err(bad(
                    format!("queues[{i}].callback_after_min"),
                    "callback_after_min",
                    &q.callback_after_min.to_string(),
                    "must be 1 minute..14 days / 须为1分钟到14天".into(),
                ));
            }
            if !cfg
                .agents
                .iter()
                .any(|a| q.required().all(|s| a.skills.iter().any(|k| k == s)))
            {
                let need: Vec<&str> = q.required().collect();
                return Err(bad(
                    format!("queues[{i}].skills"),
                    "name",
                    &q.name,
                    format!(
                        "no agent has the skills {need:?} this queue needs / 没有坐席具备该队列所需技能"
                    ),
                ));
            }
        }
        Ok(cfg)
    }

    /// Resolves relative `password_file` paths against `base` (the agents
    /// file's directory).
    pub fn with_base(mut self, base: Option<&Path>) -> Config {
        if let Some(base) = base {
            for a in &mut self.agents {
                if let Some(p) = a.register.as_mut().and_then(|r| r.password_file.as_mut()) {
                    if p.is_relative() {
                        *p = base.join(&*p);
                    }
                }
            }
        }
        self
    }

    /// Whether any agent registers to waihu (the run then acts as a registrar).
    pub fn any_registers(&self) -> bool {
        self.agents.iter().any(|a| a.register.is_some())
    }

    /// The registrar settings (defaults when the file has no `registrar:`).
    pub fn registrar(&self) -> RegistrarSpec {
        self.registrar.clone().unwrap_or_default()
    }
}
