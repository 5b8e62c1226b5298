//! Intent fallback (off by default): ask the model which of the state's
//! expected intents a turn is, and accept only one of those labels.
use crate::client::Message;
use crate::guard::Lang;

/// The request: the question the bot asked, the callee's words, the labels.
pub fn intent_prompt(lang: Lang, prompt: &str, text: &str, allowed: &[&str]) -> Vec<Message> {
    let labels = allowed.join(", ");
    let system = match lang {
        Lang::Zh => format!(
            "你是意图分类器。根据客服的问题和客户的回答，从这些标签中选一个：{labels}。\
             只输出标签本身；都不合适就输出 unknown。"
        ),
        Lang::En => format!(
            "You classify intents. Given the agent's question and the customer's reply, \
             pick one label from: {labels}. Output only the label; if none fits, output unknown."
        ),
    };
    let user = match lang {
        Lang::Zh => format!("客服：{prompt}\n客户：{text}\n标签："),
        Lang::En => format!("Agent: {prompt}\nCustomer: {text}\nLabel:"),
    };
    vec![Message::system(system), Message::user(user)]
}

/// The label the model chose, if it is exactly one of `allowed` (after
/// trimming quotes, punctuation and case), or the only allowed label that
/// occurs as a whole word in a longer reply. Anything else is `None`.
pub fn parse_intent(output: &str, allowed: &[&str]) -> Option<String> {
    let clean = |s: &str| {
        s.trim()
            .trim_matches(|c: char| !(c.is_alphanumeric() || c == '_'))
            .to_lowercase()
    };
    let first = clean(output.lines().find(|l| !l.trim().is_empty()).unwrap_or(""));
    let first = first
        .strip_prefix("label:")
        .or_else(|| first.strip_prefix("标签："))
        .map(clean)
        .unwrap_or(first);
    if let Some(a) = allowed.iter().find(|a| a.to_lowercase() == first) {
        return Some(a.to_string());
    }
    let words: Vec<String> = output
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let found: Vec<&&str> = allowed
        .iter()
        .filter(|a| words.iter().any(|w| *w == a.to_lowercase()))
        .collect();
    match found.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_allowed_labels() {
        let allowed = ["affirm", "deny", "change_time"];
        assert_eq!(parse_intent("affirm", &allowed).as_deref(), Some("affirm"));
        assert_eq!(
            parse_intent(" \"Change_Time\".\n", &allowed).as_deref(),
            Some("change_time")
        );
        assert_eq!(
            parse_intent("Label: deny", &allowed).as_deref(),
            Some("deny")
        );
        assert_eq!(
            parse_intent("The customer wants change_time.", &allowed).as_deref(),
            Some("change_time")
        );
        assert_eq!(parse_intent("affirm or deny", &allowed), None);
        assert_eq!(parse_intent("request_human", &allowed), None);
        assert_eq!(parse_intent("unknown", &allowed), None);
        assert_eq!(parse_intent("", &allowed), None);
    }

    proptest! {
        #[test]
        fn result_is_always_allowed(s in "\\PC{0,60}") {
            let allowed = ["affirm", "deny"];
            if let Some(l) = parse_intent(&s, &allowed) {
                prop_assert!(allowed.contains(&l.as_str()));
            }
        }
    }
}
