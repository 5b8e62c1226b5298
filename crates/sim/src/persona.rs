//! Personas: who a virtual callee is, what it says turn by turn (English and
//! Mandarin, with alternative phrasings), and the truth a run is scored
//! against — the telephony outcome and the business outcome the dialog
//! should end with.
use serde::{Deserialize, Serialize};
use waihu_audio::{Lang, Style};
use waihu_core::CallOutcome;

/// The kinds of callee the simulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Persona {
    Cooperative,
    ChangesAddress,
    Reschedules,
    BusyCallback,
    NotInterested,
    Cancels,
    Angry,
    AsksHuman,
    DoNotCall,
    WrongNumber,
    NoAnswer,
    Busy,
    PoweredOff,
    Voicemail,
    Interrupter,
    /// 空号: the carrier answers and says the number does not exist.
    Vacant,
    /// 停机: the carrier answers and says the line is suspended.
    Suspended,
    /// Asks an out-of-script question from the script's knowledge (how much
    /// power the purifier uses) instead of answering the address question, then
    /// goes on like a cooperative callee.
    AsksQuestion,
}

/// One turn: alternative phrasings of the same answer (one is drawn per call).
pub type Turn = &'static [&'static str];

impl Persona {
    pub const ALL: [Persona; 18] = [
        Persona::Cooperative,
        Persona::ChangesAddress,
        Persona::Reschedules,
        Persona::BusyCallback,
        Persona::NotInterested,
        Persona::Cancels,
        Persona::Angry,
        Persona::AsksHuman,
        Persona::DoNotCall,
        Persona::WrongNumber,
        Persona::NoAnswer,
        Persona::Busy,
        Persona::PoweredOff,
        Persona::Voicemail,
        Persona::Interrupter,
        Persona::Vacant,
        Persona::Suspended,
        Persona::AsksQuestion,
    ];

    /// The snake_case name (as in serde and on the command line).
    pub fn name(self) -> &'static str {
        match self {
            Persona::Cooperative => "cooperative",
            Persona::ChangesAddress => "changes_address",
            Persona::Reschedules => "reschedules",
            Persona::BusyCallback => "busy_callback",
            Persona::NotInterested => "not_interested",
            Persona::Cancels => "cancels",
            Persona::Angry => "angry",
            Persona::AsksHuman => "asks_human",
            Persona::DoNotCall => "do_not_call",
            Persona::WrongNumber => "wrong_number",
            Persona::NoAnswer => "no_answer",
            Persona::Busy => "busy",
            Persona::PoweredOff => "powered_off",
            Persona::Voicemail => "voicemail",
            Persona::Interrupter => "interrupter",
            Persona::Vacant => "vacant",
            Persona::Suspended => "suspended",
            Persona::AsksQuestion => "asks_question",
        }
    }

    /// Whether this persona picks up and talks (subject to the answer draw).
    pub fn converses(self) -> bool {
        !matches!(
            self,
            Persona::NoAnswer
                | Persona::Busy
                | Persona::PoweredOff
                | Persona::Voicemail
                | Persona::Vacant
                | Persona::Suspended
        )
    }

    /// Speaking style of the persona's voice (angry callers speak faster and higher).
    pub fn style(self) -> Style {
        match self {
            Persona::Angry => Style {
                pitch: 1.2,
                speed: 1.15,
                range: 1.0,
            },
            Persona::BusyCallback => Style {
                pitch: 1.0,
                speed: 1.1,
                range: 1.0,
            },
            _ => Style::NEUTRAL,
        }
    }

    /// How this persona's voice differs from the others' when every callee
    /// speaks with the one neural voice: `(pitch, speed)` multipliers over
    /// [`Persona::style`], spread over 0.88–1.12 and 0.9–1.1 so no two
    /// personas sound alike. Deterministic.
    pub fn voice_variation(self) -> (f32, f32) {
        let i = Persona::ALL.iter().position(|p| *p == self).unwrap_or(0) as f32;
        let spread = |k: f32| ((i * k) % 15.0) / 14.0;
        (0.88 + 0.24 * spread(7.0), 0.9 + 0.2 * spread(11.0))
    }

    /// The persona's replies, turn by turn. They answer the order-confirmation
    /// script's questions in order (opening → address → delivery time → coupon)
    /// and read naturally to a human as well. Empty for personas that never talk.
    pub fn lines(self, lang: Lang) -> &'static [Turn] {
        match lang {
            Lang::En => self.lines_en(),
            Lang::Zh => self.lines_zh(),
        }
    }

    fn lines_en(self) -> &'static [Turn] {
        match self {
            Persona::Cooperative | Persona::Interrupter => &[
                &[
                    "Yes, speaking. Sure, go ahead.",
                    "Yes, it's me. Okay, go ahead.",
                ],
                &["Yes, it is correct.", "Yes, the address is right."],
                &[
                    "Yes, someone will be home.",
                    "Yes, I will be home then, it is fine.",
                ],
                &["Yes, please send it to me.", "Sure, yes, text it to me."],
            ],
            Persona::ChangesAddress => &[
                &["Yes, speaking. Go ahead.", "Yes, it's me. Sure."],
                &[
                    "No, the address is wrong, I need to change the address.",
                    "No, that is my old address, I need to change the address.",
                ],
                &[
                    "88 Oak Avenue, Riverside.",
                    "Please deliver to 42 Elm Street, Lakewood.",
                ],
                &["Yes, someone will be home.", "Yes, the time is fine."],
                &["Yes, please send it to me.", "Sure, yes."],
            ],
            Persona::Reschedules => &[
                &["Yes, speaking. Go ahead.", "Yes, it's me. Sure."],
                &["Yes, it is correct.", "Yes, the address is right."],
                &[
                    "No, I won't be home then. Can you deliver another time?",
                    "No, I'm not home tomorrow morning, I need another time.",
                ],
                &[
                    "The day after tomorrow in the afternoon, please.",
                    "Friday afternoon at 3 pm would be better.",
                ],
                &["Yes, please send it to me.", "Sure, yes."],
            ],
            Persona::BusyCallback => &[&[
                "I'm busy right now, call me back tomorrow at 3 pm.",
                "Sorry, I'm in a meeting. Please call me back tomorrow at 3 pm.",
            ]],
            Persona::NotInterested => &[&[
                "No, I'm not interested, thanks.",
                "No thanks, I'm not interested.",
            ]],
            Persona::Cancels => &[
                &[
                    "Actually, I want to cancel the order.",
                    "I don't want it anymore, please cancel the order.",
                ],
                &[
                    "No, I don't want it, please cancel it.",
                    "No, just cancel the order, please.",
                ],
            ],
            Persona::Angry => &[
                &[
                    "This is outrageous, I'm so angry with you people! I want to file a complaint.",
                    "I'm furious! Your service is terrible and I want to complain.",
                ],
                &[
                    "This is absolutely unacceptable, I want to make a complaint!",
                    "I'm so angry, I want to complain about your service!",
                ],
            ],
            Persona::AsksQuestion => &[
                &["Yes, speaking. Go ahead.", "Yes, it's me. Sure."],
                &[
                    "How much power does the purifier use?",
                    "By the way, how much power does it use?",
                ],
                &["Yes, it is correct.", "Yes, the address is right."],
                &[
                    "Yes, someone will be home.",
                    "Yes, I will be home then, it is fine.",
                ],
                &["Yes, please send it to me.", "Sure, yes, text it to me."],
            ],
            Persona::AsksHuman => &[
                &["Yes, speaking.", "Yes, it's me."],
                &[
                    "Can I talk to a real person, please? Transfer me to a human agent.",
                    "I want to speak to a human agent, not a machine.",
                ],
            ],
            Persona::DoNotCall => &[&[
                "Please stop calling me and take my number off your list.",
                "Don't call me again. Remove my number from your list.",
            ]],
            Persona::WrongNumber => &[&[
                "Sorry, you have the wrong number.",
                "I think you've got the wrong number, there's nobody by that name here.",
            ]],
            Persona::NoAnswer
            | Persona::Busy
            | Persona::PoweredOff
            | Persona::Voicemail
            | Persona::Vacant
            | Persona::Suspended => &[],
        }
    }

    fn lines_zh(self) -> &'static [Turn] {
        match self {
            Persona::Cooperative | Persona::Interrupter => &[
                &["是的，是我，您说吧。", "对，是我，请讲。"],
                &["对，地址没错。", "是的，地址是对的。"],
                &["有人在家，可以收货。", "可以，那个时间家里有人。"],
                &["好的，发给我吧。", "好啊，发过来吧。"],
            ],
            Persona::ChangesAddress => &[
                &["是我是我，您说。", "对，是我。"],
                &["不对，送到公司去吧。", "那是旧地址，地址写错了，要改地址。"],
                &[
                    "送到北京市朝阳区建国路88号。",
                    "改到杭州市西湖区文三路20号。",
                ],
                &["对，有人在家。", "可以，那个时间有人。"],
                &["好的，谢谢。", "好的，发给我吧。"],
            ],
            Persona::Reschedules => &[
                &["对，是我，您说。", "对，是我，请讲。"],
                &["对，地址没错。", "地址是对的。"],
                &[
                    "那个时间我不在家，换个时间送吧。",
                    "那个时间不在家，能不能改到别的时间？",
                ],
                &["后天下午两点送吧。", "周五下午三点送过来吧。"],
                &["好的，发给我吧。", "好的。"],
            ],
            Persona::BusyCallback => &[&[
                "我现在在开会，明天下午三点再打给我吧。",
                "现在不方便，明天下午三点再打给我。",
            ]],
            Persona::NotInterested => &[&["不需要，我不感兴趣，谢谢。", "不用了，没兴趣。"]],
            Persona::Cancels => &[
                &["订单取消吧，我不要了。", "这个订单我不要了，取消吧。"],
                &["不用了，还是取消吧。", "不要了，取消吧。"],
            ],
            Persona::Angry => &[
                &[
                    "真是太过分了，我非常生气！我要投诉！",
                    "气死我了，你们服务太差了，我要投诉你们！",
                ],
                &["我要投诉，太不像话了！", "你们太过分了，我要投诉！"],
            ],
            Persona::AsksQuestion => &[
                &["对，是我，您说。", "对，是我，请讲。"],
                &["这个净化器耗电多少？", "请问这个净化器耗电多少？"],
                &["对，地址没错。", "是的，地址是对的。"],
                &["有人在家，可以收货。", "可以，那个时间家里有人。"],
                &["好的，发给我吧。", "好啊，发过来吧。"],
            ],
            Persona::AsksHuman => &[
                &["对，是我，您说。", "对，是我。"],
                &["我要人工服务，请帮我转接。", "我要人工服务。"],
            ],
            Persona::DoNotCall => &[&[
                "以后别再给我打电话了，把我的号码删掉。",
                "以后别给我打电话了。",
            ]],
            Persona::WrongNumber => &[&["你打错了，我不认识这个人。", "你打错了，没有这个人。"]],
            Persona::NoAnswer
            | Persona::Busy
            | Persona::PoweredOff
            | Persona::Voicemail
            | Persona::Vacant
            | Persona::Suspended => &[],
        }
    }

    /// The telephony and business outcome a correct bot records for this
    /// persona when the callee picks up (see [`crate::Population::decide`]
    /// for calls the callee does not answer). `script` is the dialog script's
    /// `name`; business outcomes are known for `order_confirmation` (derived
    /// from examples/scripts/order_confirmation.{en,zh}.yaml and checked by
    /// `tests/truth.rs` through the real NLU and interpreter), and only the
    /// script-independent ones (do-not-call, which no script can override)
    /// for other scripts.
    pub fn truth(self, script: &str) -> Truth {
        let outcome = match self {
            Persona::NoAnswer => CallOutcome::NoAnswer,
            Persona::Busy => CallOutcome::Busy,
            Persona::PoweredOff => CallOutcome::PoweredOff,
            Persona::Voicemail => CallOutcome::Voicemail,
            Persona::Vacant => CallOutcome::InvalidNumber,
            Persona::Suspended => CallOutcome::Suspended,
            _ => CallOutcome::Answered,
        };
        let business = if !self.converses() {
            None
        } else if script == "order_confirmation" {
            Some(match self {
                Persona::Cooperative
                | Persona::ChangesAddress
                | Persona::Reschedules
                | Persona::Interrupter
                | Persona::AsksQuestion => "confirmed",
                Persona::BusyCallback => "callback",
                Persona::NotInterested => "not_available",
                Persona::Cancels => "cancelled",
                // Angry and complaining: the anger global apologises, then the
                // complaint global transfers to after-sales and ends "complaint".
                Persona::Angry => "complaint",
                // The request_human global's default: transfer, end "transferred".
                Persona::AsksHuman => "transferred",
                Persona::DoNotCall => "do_not_call",
                Persona::WrongNumber => "wrong_number",
                Persona::NoAnswer
                | Persona::Busy
                | Persona::PoweredOff
                | Persona::Voicemail
                | Persona::Vacant
                | Persona::Suspended => {
                    unreachable!("handled above")
                }
            })
        } else if self == Persona::DoNotCall {
            Some("do_not_call")
        } else {
            None
        };
        Truth {
            persona: self,
            outcome,
            business: business.map(str::to_string),
        }
    }
}

impl std::fmt::Display for Persona {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Persona {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let k = s.trim().to_ascii_lowercase().replace('-', "_");
        Persona::ALL
            .into_iter()
            .find(|p| p.name() == k)
            .ok_or_else(|| {
                let names: Vec<&str> = Persona::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "未知角色 / unknown persona `{s}` (one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// What a correct bot should record for a call to a persona.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    pub persona: Persona,
    pub outcome: CallOutcome,
    /// The dialog's end outcome (`None`: not scored, e.g. never answered).
    pub business: Option<String>,
}

/// The carrier's "switched off" announcement played as early media.
pub fn powered_off_announcement(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "The number you have dialed is switched off. Please try again later.",
        Lang::Zh => "您拨打的电话已关机，请稍后再拨。",
    }
}

/// What the carrier says, after answering, for a number that does not exist
/// (`Vacant`) or a suspended line (`Suspended`), in the carriers' wording.
pub fn carrier_announcement(persona: Persona, lang: Lang) -> Option<&'static str> {
    Some(match (persona, lang) {
        (Persona::Vacant, Lang::En) => {
            "The number you have dialed is not in service. Please check the number and dial again."
        }
        (Persona::Vacant, Lang::Zh) => "对不起，您拨打的号码是空号，请查证后再拨。",
        (Persona::Suspended, Lang::En) => {
            "Sorry, the number you have dialed has been suspended. Please try again later."
        }
        (Persona::Suspended, Lang::Zh) => "对不起，您拨打的电话已停机。",
        _ => return None,
    })
}

/// A voicemail greeting (followed by a 1 kHz beep).
pub fn voicemail_greeting(lang: Lang) -> &'static str {
    match lang {
        Lang::En => {
            "Hi, you have reached my voicemail. I can't take your call right now. Please leave a message after the tone."
        }
        Lang::Zh => "您好，我现在无法接听电话，请在提示音后留言。",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_from_str() {
        for p in Persona::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
            assert_eq!(p.name().parse::<Persona>().unwrap(), p);
        }
        assert!("nobody".parse::<Persona>().is_err());
    }

    #[test]
    fn talkers_have_lines_in_both_languages_and_silent_ones_none() {
        for p in Persona::ALL {
            for lang in [Lang::En, Lang::Zh] {
                let lines = p.lines(lang);
                assert_eq!(p.converses(), !lines.is_empty(), "{p} {lang:?}");
                assert!(lines.iter().all(|t| t.len() >= 2), "{p}: alternatives");
            }
            assert_eq!(p.lines(Lang::En).len(), p.lines(Lang::Zh).len(), "{p}");
        }
    }

    #[test]
    fn truth_marks_the_unanswered_personas() {
        assert_eq!(
            Persona::Busy.truth("order_confirmation").outcome,
            CallOutcome::Busy
        );
        assert_eq!(
            Persona::PoweredOff.truth("x").outcome,
            CallOutcome::PoweredOff
        );
        assert_eq!(Persona::Voicemail.truth("x").business, None);
        assert_eq!(
            Persona::DoNotCall
                .truth("payment_reminder")
                .business
                .as_deref(),
            Some("do_not_call")
        );
        assert_eq!(
            Persona::Cooperative.truth("payment_reminder").business,
            None
        );
    }
}
