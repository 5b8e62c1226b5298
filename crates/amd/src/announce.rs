//! Carrier announcements: what the words say about the number (空号, 关机,
//! 停机, 忙, 无法接通 and their English equivalents), the call outcome each
//! maps to, and how soon to try again.
use serde::Serialize;
use waihu_core::CallOutcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Announcement {
    /// 空号: the number does not exist.
    Vacant,
    /// 停机: the line is suspended (unpaid, cancelled).
    Suspended,
    /// 关机: the phone is switched off.
    PoweredOff,
    /// 无法接通 / 不在服务区: out of coverage, cannot be reached now.
    Unreachable,
    /// 忙 / 正在通话中.
    Busy,
    /// A special information tone with no words we know (an operator-side failure).
    Sit,
}

/// How soon the campaign may call the number again after an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "retry")]
pub enum RetryAdvice {
    /// Never: the number is dead.
    Stop,
    /// After this many seconds.
    After { secs: u64 },
}

impl Announcement {
    pub const ALL: [Announcement; 6] = [
        Announcement::Vacant,
        Announcement::Suspended,
        Announcement::PoweredOff,
        Announcement::Unreachable,
        Announcement::Busy,
        Announcement::Sit,
    ];

    /// The kind named `name` ([`Announcement::name`], or its 中文 name).
    pub fn from_name(name: &str) -> Option<Announcement> {
        let n = name.trim();
        Announcement::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(n) || k.zh() == n)
    }

    pub fn name(self) -> &'static str {
        match self {
            Announcement::Vacant => "vacant",
            Announcement::Suspended => "suspended",
            Announcement::PoweredOff => "powered_off",
            Announcement::Unreachable => "unreachable",
            Announcement::Busy => "busy",
            Announcement::Sit => "sit",
        }
    }

    /// 中文 name for reports.
    pub fn zh(self) -> &'static str {
        match self {
            Announcement::Vacant => "空号",
            Announcement::Suspended => "停机",
            Announcement::PoweredOff => "关机",
            Announcement::Unreachable => "无法接通",
            Announcement::Busy => "忙",
            Announcement::Sit => "特殊信息音",
        }
    }

    /// The stored call outcome.
    pub fn outcome(self) -> CallOutcome {
        match self {
            Announcement::Vacant => CallOutcome::InvalidNumber,
            Announcement::Suspended => CallOutcome::Suspended,
            Announcement::PoweredOff | Announcement::Unreachable => CallOutcome::PoweredOff,
            Announcement::Busy => CallOutcome::Busy,
            Announcement::Sit => CallOutcome::Congestion,
        }
    }

    /// Default retry advice, the campaign defaults of the outcome each is
    /// stored as (a campaign's `retry:` table overrides them, except that a
    /// vacant number is never called again): a suspended line (mostly an
    /// unpaid bill) once more in 3 days; a phone switched off or out of
    /// coverage in 4 hours; busy in 30 minutes; a network failure tone in 5
    /// minutes.
    pub fn retry(self) -> RetryAdvice {
        match self {
            Announcement::Vacant => RetryAdvice::Stop,
            Announcement::Suspended => RetryAdvice::After { secs: 72 * 3600 },
            Announcement::PoweredOff | Announcement::Unreachable => {
                RetryAdvice::After { secs: 4 * 3600 }
            }
            Announcement::Busy => RetryAdvice::After { secs: 1800 },
            Announcement::Sit => RetryAdvice::After { secs: 300 },
        }
    }
}

/// Cues per kind, checked in this order: the more specific first (停机 and
/// 空号 announcements often add "请核对后再拨", and 关机 ones "请稍后再拨").
const CUES: &[(Announcement, &[&str])] = &[
    (
        Announcement::Suspended,
        &[
            "停机",
            "已暂停服务",
            "暂停服务",
            "欠费",
            "suspended",
            "temporarily disconnected",
            "has been barred",
            "service has been restricted",
        ],
    ),
    (
        Announcement::Vacant,
        &[
            "空号",
            "空號",
            "不存在",
            "号码有误",
            "does not exist",
            "not in service",
            "is not a working",
            "no longer in service",
            "has been disconnected",
            "not a valid number",
            "check the number",
        ],
    ),
    (
        Announcement::PoweredOff,
        &["关机", "關機", "switched off", "powered off", "turned off"],
    ),
    (
        Announcement::Unreachable,
        &[
            "无法接通",
            "無法接通",
            "不在服务区",
            "不在服務區",
            "暂时无法接通",
            "unreachable",
            "not reachable",
            "cannot be reached",
            "out of service area",
            "out of coverage",
            "not be connected",
        ],
    ),
    (
        Announcement::Busy,
        &[
            "正在通话",
            "正在通話",
            "用户忙",
            "忙线",
            "is busy",
            "line is busy",
            "on another call",
            "engaged",
        ],
    ),
];

/// The announcement the words are, if any.
pub fn classify(text: &str) -> Option<Announcement> {
    let t = text.to_lowercase();
    CUES.iter()
        .find(|(_, cues)| cues.iter().any(|c| t.contains(c)))
        .map(|(k, _)| *k)
}

/// The standard carrier recordings, whole, per kind. Carriers play a few fixed
/// recordings, so a transcript that misheard a word or two of one (Whisper base
/// hears 已关机 as 与关系 on a synthetic 8 kHz line) is still closest to it.
const RECORDINGS: &[(Announcement, &str)] = &[
    (Announcement::PoweredOff, "您拨打的电话已关机请稍后再拨"),
    (Announcement::PoweredOff, "您拨打的电话已关机"),
    (Announcement::PoweredOff, "您拨打的用户已关机"),
    (Announcement::Vacant, "您拨打的号码是空号请查证后再拨"),
    (Announcement::Vacant, "您拨打的电话号码不存在"),
    (Announcement::Suspended, "您拨打的电话已停机"),
    (Announcement::Suspended, "您拨打的用户已暂停服务"),
    (
        Announcement::Unreachable,
        "您拨打的电话暂时无法接通请稍后再拨",
    ),
    (
        Announcement::Unreachable,
        "您拨打的用户不在服务区请稍后再拨",
    ),
    (Announcement::Busy, "您拨打的用户正在通话中请稍后再拨"),
    (Announcement::Busy, "您拨打的电话正在通话中请稍后再拨"),
    (
        Announcement::PoweredOff,
        "the subscriber you have dialed is switched off",
    ),
    (
        Announcement::Vacant,
        "the number you have dialed is not in service",
    ),
    // Recordings are matched whole: with its usual tail, a misheard one
    // ("the humber you have milded hot in service…", Whisper tiny.en on the
    // 8 kHz line, measured) stays nearest to its own text.
    (
        Announcement::Vacant,
        "the number you have dialed is not in service please check the number and dial again",
    ),
    (
        Announcement::Vacant,
        "the number you have reached is not in service",
    ),
    (
        Announcement::Suspended,
        "the number you have dialed has been suspended",
    ),
    (
        Announcement::Unreachable,
        "the number you have dialed cannot be reached",
    ),
];

/// Least similarity (1 − edit distance / length, over characters) to a
/// recording, and the least lead over the closest recording of another kind.
const NEAR: f64 = 0.6;
const LEAD: f64 = 0.08;

/// Lowercase letters, digits and CJK only: punctuation and spaces differ
/// between transcripts and say nothing. English keeps single spaces.
fn squash(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if c.is_whitespace() && c.is_ascii() && !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
        }
    }
    out.trim_end().to_string()
}

/// What a transcript heard on a line that is known to carry a carrier's words
/// (early media before any answer, or audio the detector holds as a machine or
/// SIT): the cue words of [`classify`], or else the standard recording the
/// words are closest to — by a clear lead over every other kind. Never used on
/// a person's turns: a caller saying "您拨打的…" is not a carrier.
pub fn classify_heard(text: &str) -> Option<Announcement> {
    if let Some(k) = classify(text) {
        return Some(k);
    }
    let t = squash(text);
    if t.chars().count() < 4 {
        return None;
    }
    let mut best: Option<(Announcement, f64)> = None;
    let mut runner_up = 0.0f64;
    for (kind, rec) in RECORDINGS {
        let sim = strsim::normalized_levenshtein(&t, rec);
        match best {
            Some((k, b)) if sim > b => {
                if k != *kind {
                    runner_up = runner_up.max(b);
                }
                best = Some((*kind, sim));
            }
            Some((k, _)) if k != *kind => runner_up = runner_up.max(sim),
            Some(_) => {}
            None => best = Some((*kind, sim)),
        }
    }
    let (kind, sim) = best?;
    (sim >= NEAR && sim - runner_up >= LEAD).then_some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misheard_recordings_are_still_known() {
        // Whisper base on the synthetic 8 kHz 关机 recording (measured).
        assert_eq!(
            classify_heard("您播打的电话与关系,请稍后再播"),
            Some(Announcement::PoweredOff)
        );
        assert_eq!(
            classify_heard("您拨打的号码是空浩，请查正后再拨。"),
            Some(Announcement::Vacant)
        );
        assert_eq!(
            classify_heard("您拨打的电话暂时无法接同，请稍后再拨"),
            Some(Announcement::Unreachable)
        );
        assert_eq!(
            classify_heard("The subscriber you have dialled is switched of."),
            Some(Announcement::PoweredOff)
        );
        // Whisper tiny.en on the English vacant recording after its SIT (two
        // live runs): no cue word survives.
        for heard in [
            "The humber you have milded hot in service. Please check the humber and dial again.",
            "The humber you have I'll be not in service. Please check the humber and I'll again.",
        ] {
            assert_eq!(classify_heard(heard), Some(Announcement::Vacant), "{heard}");
        }
        // Cue words still win first.
        assert_eq!(
            classify_heard("您拨打的电话已停机"),
            Some(Announcement::Suspended)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_read_without_panic(text in "\\PC{0,80}") {
            let _ = classify_heard(&text);
        }
    }

    #[test]
    fn people_and_unclear_words_are_not_recordings() {
        for text in [
            "",
            "喂？",
            "我现在在开会，明天下午三点再打给我吧。",
            "您拨打的",
            "您拨打的电话请稍后",
            "Hello, who is this?",
            "请在提示音后留言",
        ] {
            assert_eq!(classify_heard(text), None, "{text}");
        }
    }

    #[test]
    fn carrier_phrasings_in_both_languages() {
        let cases = [
            ("您拨打的号码是空号，请查证后再拨。", Announcement::Vacant),
            ("您拨打的电话已停机。", Announcement::Suspended),
            ("您拨打的用户已暂停服务", Announcement::Suspended),
            ("您拨打的电话已关机，请稍后再拨。", Announcement::PoweredOff),
            (
                "您拨打的电话暂时无法接通，请稍后再拨。",
                Announcement::Unreachable,
            ),
            ("您拨打的用户正在通话中，请稍后再拨。", Announcement::Busy),
            (
                "The number you have dialed is not in service.",
                Announcement::Vacant,
            ),
            (
                "The number you have dialed has been suspended.",
                Announcement::Suspended,
            ),
            (
                "The subscriber you dialed is switched off.",
                Announcement::PoweredOff,
            ),
            (
                "The number you have dialed cannot be reached.",
                Announcement::Unreachable,
            ),
            (
                "The line is busy, please try again later.",
                Announcement::Busy,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(classify(text), Some(want), "{text}");
        }
        assert_eq!(classify("喂，你好，哪位？"), None);
        assert_eq!(classify("Hello, who is this?"), None);
    }

    #[test]
    fn kinds_are_known_by_name() {
        for k in Announcement::ALL {
            assert_eq!(Announcement::from_name(k.name()), Some(k));
            assert_eq!(Announcement::from_name(k.zh()), Some(k));
        }
        assert_eq!(
            Announcement::from_name(" Suspended "),
            Some(Announcement::Suspended)
        );
        assert_eq!(Announcement::from_name("invalid_number"), None);
    }

    #[test]
    fn outcomes_and_retry() {
        assert_eq!(Announcement::Vacant.retry(), RetryAdvice::Stop);
        assert_eq!(Announcement::Vacant.outcome(), CallOutcome::InvalidNumber);
        assert_eq!(
            Announcement::Suspended.retry(),
            RetryAdvice::After { secs: 72 * 3600 }
        );
        assert_eq!(Announcement::Suspended.outcome(), CallOutcome::Suspended);
        assert_eq!(Announcement::Busy.outcome(), CallOutcome::Busy);
    }
}
