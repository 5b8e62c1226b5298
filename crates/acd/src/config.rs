//! The agents file (`agents.yaml`): agents listed by SIP URI and the queues
//! scripts transfer to. Errors name the file, line, column and field.
use serde::{Deserialize, Serialize};

pub(crate) const DEFAULT_WRAP_UP_S: u64 = 10;

/// One agent (a softphone reached by URI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    pub id: String,
    /// `sip:user@host:port`.
    pub uri: String,
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
            let rest = a.uri.strip_prefix("sip:").unwrap_or("");
            if rest.is_empty() || rest.contains(char::is_whitespace) {
                return Err(bad(
                    format!("agents[{i}].uri"),
                    "uri",
                    &a.uri,
                    format!(
                        "{:?} is not a SIP URI (sip:user@host:port) / 不是SIP地址",
                        a.uri
                    ),
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
}
