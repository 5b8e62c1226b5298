//! A call over text instead of audio: the script's interpreter with the
//! script's NLU, as `waihu script chat` (a console) and text-only test turns
//! drive it. A console has no audio, so a prompt's playback "finishes" at once.
//! No clock is read here: the caller passes the time of each turn and the
//! anchor relative times ("明天下午") are resolved against.
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use waihu_core::{Emotion, EmotionLabel, NluContext, NluResult};
use waihu_dialog::testing::BotTurn;
use waihu_dialog::{Aside, Input, Interpreter, Language, Level, MissingVariables, Output, Program};
use waihu_nlu::Tz;

/// The zone relative times are resolved in for a script in `lang`.
pub fn zone(lang: Language) -> Tz {
    match lang {
        Language::Zh => Tz::Asia__Shanghai,
        Language::En => Tz::America__New_York,
    }
}

/// The script's NLU (built-in intents plus the script's own) as a function of
/// the callee's words and what the current state expects of them; relative
/// times are anchored at `anchor()`.
pub fn classifier(
    prog: &Program,
    anchor: impl Fn() -> DateTime<Utc>,
) -> Result<impl Fn(&str, &NluContext) -> NluResult, waihu_nlu::Error> {
    let nlu = crate::script_nlu(prog)?;
    let tz = zone(prog.language);
    Ok(move |text: &str, cx: &NluContext| nlu.classify_in(text, anchor(), tz, cx))
}

/// One line of the console: what the callee did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// An empty line or `/silence`.
    Silence,
    /// `/hangup`.
    HangUp,
    /// `/dtmf 1#`.
    Dtmf(&'a str),
    /// Anything else: words.
    Say(&'a str),
}

impl<'a> Line<'a> {
    pub fn parse(line: &'a str) -> Line<'a> {
        let line = line.trim();
        if line.is_empty() || line == "/silence" {
            Line::Silence
        } else if line == "/hangup" {
            Line::HangUp
        } else if let Some(d) = line.strip_prefix("/dtmf") {
            Line::Dtmf(d.trim())
        } else {
            Line::Say(line)
        }
    }
}

/// A text conversation with a script.
pub struct TextCall<C> {
    call: Interpreter,
    classify: C,
}

impl<C: Fn(&str, &NluContext) -> NluResult> TextCall<C> {
    /// Starts a call of `prog` for a customer with `vars`; `seed` picks the A/B
    /// prompt variants.
    pub fn new(
        prog: Arc<Program>,
        vars: &BTreeMap<String, String>,
        seed: u64,
        classify: C,
    ) -> Result<Self, MissingVariables> {
        Ok(TextCall {
            call: Interpreter::new(prog, vars, seed)?,
            classify,
        })
    }

    /// Feeds one input at `now`; a prompt it plays is taken as heard in full.
    pub fn step(&mut self, input: Input<'_>, now: DateTime<Utc>) -> BotTurn {
        let outputs = self.call.handle(now, input).to_vec();
        self.settle(outputs, now)
    }

    /// An out-of-script question answered aside (the script's `knowledge:`,
    /// see [`Interpreter::aside`]): the answer or the fallback line, then the
    /// current prompt again.
    pub fn aside(&mut self, answer: Aside<'_>, now: DateTime<Utc>) -> BotTurn {
        let outputs = self.call.aside(now, answer).to_vec();
        self.settle(outputs, now)
    }

    /// A console has no audio: what was played counts as heard in full.
    fn settle(&mut self, mut outputs: Vec<Output>, now: DateTime<Utc>) -> BotTurn {
        let call = &mut self.call;
        if outputs.iter().any(|o| matches!(o, Output::Play { .. })) && !call.is_ended() {
            outputs.extend(call.handle(now, Input::PlaybackFinished).iter().cloned());
        }
        BotTurn {
            state: call.state().to_string(),
            outputs,
        }
    }

    /// The callee picks up: the opening prompt.
    pub fn answer(&mut self, now: DateTime<Utc>) -> BotTurn {
        self.step(Input::Answered, now)
    }

    /// One console line; words go through the NLU (an angry sentiment counts as
    /// an angry voice), and what was understood comes back with the bot's turn.
    pub fn line(&mut self, line: Line<'_>, now: DateTime<Utc>) -> (BotTurn, Option<NluResult>) {
        match line {
            Line::Silence => (self.step(Input::NoInput, now), None),
            Line::HangUp => (self.step(Input::HungUp, now), None),
            Line::Dtmf(d) => (self.step(Input::Dtmf(d), now), None),
            Line::Say(text) => {
                let nlu = self.understand(text);
                (self.heard(&nlu, now), Some(nlu))
            }
        }
    }

    /// What the NLU makes of `text` in the current state (nothing is fed to the call).
    pub fn understand(&self, text: &str) -> NluResult {
        (self.classify)(text, &self.call.nlu_context())
    }

    /// Feeds words already understood; an angry sentiment counts as an angry voice.
    pub fn heard(&mut self, nlu: &NluResult, now: DateTime<Utc>) -> BotTurn {
        let emotion = nlu.sentiment.angry.then_some(Emotion {
            label: EmotionLabel::Angry,
            confidence: 0.8,
        });
        self.step(Input::Utterance { nlu, emotion }, now)
    }

    /// The interpreter, for questions such as [`Interpreter::wants_knowledge`].
    pub fn interpreter(&self) -> &Interpreter {
        &self.call
    }

    pub fn is_ended(&self) -> bool {
        self.call.is_ended()
    }

    /// The outcome and intention level; a call that never reached an end is a hang-up.
    pub fn outcome(&self) -> (String, Option<Level>) {
        self.call
            .ended()
            .cloned()
            .unwrap_or(("hangup".into(), None))
    }

    /// The states visited, in order.
    pub fn path(&self) -> Vec<&str> {
        self.call.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines_parse() {
        assert_eq!(Line::parse("  "), Line::Silence);
        assert_eq!(Line::parse("/silence"), Line::Silence);
        assert_eq!(Line::parse("/hangup"), Line::HangUp);
        assert_eq!(Line::parse("/dtmf 1#"), Line::Dtmf("1#"));
        assert_eq!(Line::parse(" 是的 "), Line::Say("是的"));
    }
}
