//! Call summaries and dispositions as validated JSON: the prompt, a strict
//! reader that repairs what is safely repairable and rejects the rest, and a
//! rule-based summary from the call's turns used whenever the model's output
//! does not pass. Sans-IO.
use serde::{Deserialize, Serialize};

use crate::client::Message;
use crate::guard::{Facts, Guard, Lang};
use crate::sentence::SentenceSplitter;

/// The fixed set of dispositions (CRM / dashboard vocabulary).
pub const DISPOSITIONS: &[&str] = &[
    "interested",
    "not_interested",
    "confirmed",
    "callback",
    "cancelled",
    "complaint",
    "wrong_number",
    "do_not_call",
    "no_response",
    "transferred",
    "voicemail",
    "other",
];

/// The schema every summary satisfies (checked by [`parse_summary`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// One or two sentences, in the call's language, ≤ 200 characters.
    pub summary: String,
    /// One of [`DISPOSITIONS`].
    pub disposition: String,
    /// RFC 3339, when the callee asked to be called back at a time.
    pub callback_time: Option<String>,
    /// Whether a person should act on this call.
    pub follow_up: bool,
    pub language: Lang,
    /// `llm` or `rules`.
    pub source: String,
    /// What was repaired in the model's output, if anything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repairs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Bot,
    Callee,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnText {
    pub speaker: Speaker,
    pub text: String,
    #[serde(default)]
    pub intent: Option<String>,
}

/// What a summary is made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallText {
    pub language: Lang,
    pub turns: Vec<TurnText>,
    /// The script's outcome (`confirmed`, `callback`, ...), when known.
    #[serde(default)]
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummaryError {
    #[error("no JSON object in the model's output")]
    NoJson,
    #[error("not valid JSON: {0}")]
    BadJson(String),
    #[error("field `{field}`: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

fn field(field: &'static str, problem: impl Into<String>) -> SummaryError {
    SummaryError::Field {
        field,
        problem: problem.into(),
    }
}

/// The request for a summary of `call`.
pub fn summary_prompt(call: &CallText) -> Vec<Message> {
    let mut t = String::new();
    for turn in &call.turns {
        let who = match (call.language, &turn.speaker) {
            (Lang::Zh, Speaker::Bot) => "客服",
            (Lang::Zh, Speaker::Callee) => "客户",
            (Lang::En, Speaker::Bot) => "Agent",
            (Lang::En, Speaker::Callee) => "Customer",
        };
        t.push_str(&format!("{who}: {}\n", turn.text));
    }
    let labels = DISPOSITIONS.join(", ");
    let system = match call.language {
        Lang::Zh => format!(
            "你为外呼通话写摘要。只输出一个JSON对象，字段：summary（用中文概括客户的态度和结果，一句话，不要照抄对话），\
             disposition（从这些值中选一个：{labels}），callback_time（RFC 3339时间或null），follow_up（true或false）。"
        ),
        Lang::En => format!(
            "You summarise outbound calls. Output only one JSON object with fields: summary (one English sentence \
             about the customer's stance and the result; do not copy the dialogue), disposition (one of: {labels}), \
             callback_time (RFC 3339 or null), follow_up (true or false)."
        ),
    };
    vec![Message::system(system), Message::user(t)]
}

fn extract_json(s: &str) -> Option<&str> {
    let start = s.find('{')?;
    let mut depth = 0i32;
    let mut in_str = false;
    let mut esc = false;
    for (i, c) in s[start..].char_indices() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&s[start..start + i + 1]);
                }
            }
            _ => {}
        }
    }
    None
}

fn repair_disposition(raw: &str) -> Option<&'static str> {
    let k = raw.trim().to_lowercase().replace([' ', '-'], "_");
    if let Some(d) = DISPOSITIONS.iter().find(|d| **d == k) {
        return Some(d);
    }
    Some(match k.as_str() {
        "call_back" | "callback_requested" | "回电" | "回访" | "稍后联系" => "callback",
        "uninterested" | "no_interest" | "不感兴趣" | "拒绝" => "not_interested",
        "有意向" | "感兴趣" => "interested",
        "确认" | "已确认" => "confirmed",
        "取消" | "canceled" => "cancelled",
        "投诉" => "complaint",
        "打错了" | "wrong_person" => "wrong_number",
        "dnc" | "勿扰" => "do_not_call",
        "no_answer" | "无应答" | "hangup" => "no_response",
        "转人工" | "transfer" => "transferred",
        _ => return None,
    })
}

/// Reads and validates the model's output against the schema; `call` is the
/// evidence (the summary may state no number, time or promise the call did not).
pub fn parse_summary(output: &str, call: &CallText) -> Result<Summary, SummaryError> {
    let json = extract_json(output).ok_or(SummaryError::NoJson)?;
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| SummaryError::BadJson(e.to_string()))?;
    let obj = v.as_object().ok_or(SummaryError::NoJson)?;
    let mut repairs = Vec::new();
    let summary = obj
        .get("summary")
        .and_then(|s| s.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| field("summary", "missing or not a non-empty string"))?
        .to_string();
    let max = match call.language {
        Lang::Zh => 200,
        Lang::En => 400,
    };
    if summary.chars().count() > max {
        return Err(field("summary", format!("longer than {max} characters")));
    }
    for turn in &call.turns {
        let t = turn.text.trim();
        if t.chars().count() >= 15 && summary.contains(t) {
            return Err(field(
                "summary",
                "copies the dialogue instead of summarising it",
            ));
        }
    }
    let guard = Guard::new(
        call.language,
        Facts::new(call.turns.iter().map(|t| t.text.as_str())),
    );
    let mut sp = SentenceSplitter::new();
    let mut sentences = sp.push(&summary);
    sentences.extend(sp.finish());
    for s in &sentences {
        guard
            .check(s)
            .map_err(|v| field("summary", v.to_string()))?;
    }
    let raw_disp = obj
        .get("disposition")
        .and_then(|d| d.as_str())
        .ok_or_else(|| field("disposition", "missing or not a string"))?;
    let disposition = repair_disposition(raw_disp).ok_or_else(|| {
        field(
            "disposition",
            format!("{raw_disp:?} is not one of {}", DISPOSITIONS.join(", ")),
        )
    })?;
    if disposition != raw_disp {
        repairs.push(format!("disposition {raw_disp:?} read as {disposition:?}"));
    }
    let callback_time = match obj.get("callback_time") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.trim().is_empty() || s == "null" => None,
        Some(serde_json::Value::String(s)) => {
            match chrono::DateTime::parse_from_rfc3339(s.trim()) {
                Ok(t) => Some(t.to_rfc3339()),
                Err(_) => {
                    repairs.push(format!("callback_time {s:?} is not RFC 3339; dropped"));
                    None
                }
            }
        }
        Some(other) => {
            return Err(field(
                "callback_time",
                format!("{other} is not a string or null"),
            ))
        }
    };
    // A time only means something for a call back; elsewhere it is the model's invention.
    let callback_time = match callback_time {
        Some(t) if disposition != "callback" => {
            repairs.push(format!(
                "callback_time {t:?} given for a {disposition:?} call; dropped"
            ));
            None
        }
        t => t,
    };
    let follow_up = match obj.get("follow_up") {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => match s.trim().to_lowercase().as_str() {
            "true" | "yes" | "是" => {
                repairs.push("follow_up given as a string".into());
                true
            }
            "false" | "no" | "否" => {
                repairs.push("follow_up given as a string".into());
                false
            }
            _ => return Err(field("follow_up", format!("{s:?} is not true or false"))),
        },
        None => {
            repairs.push("follow_up missing; derived from the disposition".into());
            needs_follow_up(disposition)
        }
        Some(other) => return Err(field("follow_up", format!("{other} is not true or false"))),
    };
    Ok(Summary {
        summary,
        disposition: disposition.to_string(),
        callback_time,
        follow_up,
        language: call.language,
        source: "llm".into(),
        repairs,
    })
}

fn needs_follow_up(d: &str) -> bool {
    matches!(d, "interested" | "callback" | "complaint" | "transferred")
}

fn disposition_of(outcome: Option<&str>, intents: &[&str]) -> &'static str {
    if let Some(o) = outcome {
        if let Some(d) = repair_disposition(o) {
            return d;
        }
        match o {
            "not_available" | "declined" | "refused" => return "not_interested",
            "paid" | "promised" | "accepted" | "renewed" | "success" => return "interested",
            _ => {}
        }
    }
    for i in intents.iter().rev() {
        let d = match *i {
            "do_not_call" => "do_not_call",
            "complaint" => "complaint",
            "wrong_number" => "wrong_number",
            "busy_callback" => "callback",
            "not_interested" | "deny" => "not_interested",
            "affirm" => "interested",
            "request_human" => "transferred",
            _ => continue,
        };
        return d;
    }
    if intents.is_empty() {
        "no_response"
    } else {
        "other"
    }
}

/// A summary from the turns alone (no model): the disposition from the
/// outcome or the callee's last telling intent, a sentence from templates.
pub fn rule_summary(call: &CallText) -> Summary {
    let intents: Vec<&str> = call
        .turns
        .iter()
        .filter(|t| t.speaker == Speaker::Callee)
        .filter_map(|t| t.intent.as_deref())
        .filter(|i| *i != "unknown")
        .collect();
    let disposition = disposition_of(call.outcome.as_deref(), &intents);
    let callee_turns = call
        .turns
        .iter()
        .filter(|t| t.speaker == Speaker::Callee)
        .count();
    let summary = match call.language {
        Lang::Zh => format!(
            "客户共回应{}轮，通话结果：{}{}。",
            callee_turns,
            zh_label(disposition),
            call.outcome
                .as_deref()
                .map(|o| format!("（话术结果 {o}）"))
                .unwrap_or_default()
        ),
        Lang::En => format!(
            "The customer spoke {} time{}; result: {}{}.",
            callee_turns,
            if callee_turns == 1 { "" } else { "s" },
            disposition.replace('_', " "),
            call.outcome
                .as_deref()
                .map(|o| format!(" (script outcome {o})"))
                .unwrap_or_default()
        ),
    };
    Summary {
        summary,
        disposition: disposition.to_string(),
        callback_time: None,
        follow_up: needs_follow_up(disposition),
        language: call.language,
        source: "rules".into(),
        repairs: Vec::new(),
    }
}

fn zh_label(d: &str) -> &'static str {
    match d {
        "interested" => "有意向",
        "not_interested" => "无意向",
        "confirmed" => "已确认",
        "callback" => "约定回访",
        "cancelled" => "已取消",
        "complaint" => "投诉",
        "wrong_number" => "号码有误",
        "do_not_call" => "要求勿扰",
        "no_response" => "无应答",
        "transferred" => "转人工",
        "voicemail" => "语音信箱",
        _ => "其他",
    }
}

/// Reads a transcript: the JSON lines of `waihu script chat --json` (bot
/// prompts, `heard` callee turns, the final `outcome`), or one JSON object
/// `{language?, turns: [{speaker, text, intent?}], outcome?}`.
pub fn parse_transcript(text: &str) -> Result<CallText, String> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        if v.get("turns").is_some() {
            let mut v = v;
            if v.get("language").is_none() {
                let all: String = v["turns"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|t| t["text"].as_str()).collect())
                    .unwrap_or_default();
                v["language"] = serde_json::json!(detect_lang(&all).as_str());
            }
            return serde_json::from_value(v).map_err(|e| format!("transcript: {e}"));
        }
    }
    let mut turns = Vec::new();
    let mut outcome = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON ({e})", i + 1))?;
        if let Some(h) = v.get("heard") {
            turns.push(TurnText {
                speaker: Speaker::Callee,
                text: h["text"].as_str().unwrap_or_default().to_string(),
                intent: h["intent"].as_str().map(str::to_string),
            });
        }
        if let Some(p) = v.get("prompt").and_then(|p| p.as_str()) {
            if !p.is_empty() {
                turns.push(TurnText {
                    speaker: Speaker::Bot,
                    text: p.to_string(),
                    intent: None,
                });
            }
        }
        if let Some(o) = v.get("outcome").and_then(|o| o.as_str()) {
            outcome = Some(o.to_string());
        }
    }
    if turns.is_empty() {
        return Err(
            "no turns found (expected `waihu script chat --json` lines or {\"turns\": [...]})"
                .into(),
        );
    }
    let all: String = turns.iter().map(|t| t.text.as_str()).collect();
    Ok(CallText {
        language: detect_lang(&all),
        turns,
        outcome,
    })
}

/// Chinese when at least a tenth of the letters are Han characters.
pub fn detect_lang(s: &str) -> Lang {
    let han = s
        .chars()
        .filter(|&c| matches!(c, '\u{4e00}'..='\u{9fff}'))
        .count();
    let latin = s.chars().filter(|c| c.is_ascii_alphabetic()).count();
    if han * 10 >= (han + latin).max(1) {
        Lang::Zh
    } else {
        Lang::En
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn call() -> CallText {
        CallText {
            language: Lang::Zh,
            turns: vec![
                TurnText {
                    speaker: Speaker::Bot,
                    text: "您好，请问是张先生吗？想跟您确认一下空气净化器的配送信息。".into(),
                    intent: None,
                },
                TurnText {
                    speaker: Speaker::Callee,
                    text: "我现在忙，明天下午再打吧".into(),
                    intent: Some("busy_callback".into()),
                },
            ],
            outcome: Some("callback".into()),
        }
    }

    #[test]
    fn valid_and_repaired() {
        let s = parse_summary("```json\n{\"summary\":\"客户正忙，要求明天下午再联系。\",\"disposition\":\"Call Back\",\"callback_time\":\"\",\"follow_up\":\"yes\"}\n```", &call()).unwrap();
        assert_eq!(s.disposition, "callback");
        assert!(s.follow_up);
        assert_eq!(s.callback_time, None);
        assert_eq!(s.repairs.len(), 2);
        let s = parse_summary("{\"summary\":\"客户确认了配送信息。\",\"disposition\":\"confirmed\",\"callback_time\":\"2023-09-12T12:00:00Z\",\"follow_up\":false}", &call()).unwrap();
        assert_eq!(s.callback_time, None, "a time is kept for a call back only");
        assert!(s.repairs[0].contains("dropped"), "{:?}", s.repairs);
    }

    #[test]
    fn invalid_is_rejected() {
        let c = call();
        assert_eq!(parse_summary("客户很忙", &c), Err(SummaryError::NoJson));
        assert!(matches!(
            parse_summary("{\"summary\":\"x\"", &c),
            Err(SummaryError::NoJson)
        ));
        assert!(matches!(
            parse_summary("{\"summary\":\"客户正忙。\",\"disposition\":\"maybe\"}", &c),
            Err(SummaryError::Field {
                field: "disposition",
                ..
            })
        ));
        assert!(matches!(
            parse_summary(
                "{\"summary\":\"客户答应下周三付款500元。\",\"disposition\":\"interested\"}",
                &c
            ),
            Err(SummaryError::Field {
                field: "summary",
                ..
            })
        ));
        assert!(matches!(parse_summary("{\"summary\":\"您好，请问是张先生吗？想跟您确认一下空气净化器的配送信息。\",\"disposition\":\"callback\"}", &c), Err(SummaryError::Field { field: "summary", .. })));
        assert!(matches!(
            parse_summary(
                "{\"summary\":\"The customer is busy.\",\"disposition\":\"callback\"}",
                &c
            ),
            Err(SummaryError::Field {
                field: "summary",
                ..
            })
        ));
    }

    #[test]
    fn rules() {
        let s = rule_summary(&call());
        assert_eq!(s.disposition, "callback");
        assert!(s.follow_up);
        assert_eq!(s.source, "rules");
        let chat = "{\"state\":\"opening\",\"prompt\":\"Hello, is this Mr. Smith?\",\"actions\":[]}\n{\"state\":\"x\",\"prompt\":\"OK, bye.\",\"heard\":{\"text\":\"not interested\",\"intent\":\"not_interested\"}}\n{\"outcome\":\"not_available\",\"level\":null,\"path\":[]}\n";
        let c = parse_transcript(chat).unwrap();
        assert_eq!(c.language, Lang::En);
        assert_eq!(rule_summary(&c).disposition, "not_interested");
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_only_fixed_dispositions(s in "\\PC{0,200}") {
            if let Ok(sum) = parse_summary(&s, &call()) {
                prop_assert!(DISPOSITIONS.contains(&sum.disposition.as_str()));
            }
            let _ = parse_transcript(&s);
        }
    }
}
