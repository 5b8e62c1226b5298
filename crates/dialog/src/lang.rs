//! Built-in wording of the global handlers and retries, per script language.
//! Scripts override every one of these; these exist so a minimal script is
//! still polite and compliant.
use crate::model::Language;

pub struct Texts {
    pub dnc: &'static str,
    pub human: &'static str,
    pub complaint: &'static str,
    pub anger: &'static str,
    pub identity: &'static str,
    pub wrong_number: &'static str,
    pub busy_callback: &'static str,
    pub no_input: &'static str,
    pub no_match: &'static str,
    pub goodbye_silent: &'static str,
    pub goodbye_not_understood: &'static str,
    pub max_turns: &'static str,
}

pub const ZH: Texts = Texts {
    dnc: "好的，已为您登记免打扰，今后不会再致电打扰您。祝您生活愉快，再见。",
    human: "好的，正在为您转接人工客服，请稍候。",
    complaint: "非常抱歉给您带来不好的体验，我马上为您转接专人处理。",
    anger: "非常抱歉给您添麻烦了，请您别着急，我们一定认真处理。",
    identity: "我是智能客服助理。",
    wrong_number: "抱歉打扰您了，再见。",
    busy_callback: "好的，不打扰您了，我们稍后再联系您，再见。",
    no_input: "您好，您还在吗？",
    no_match: "不好意思，我没有听清楚。",
    goodbye_silent: "可能信号不太好，我们稍后再联系您，再见。",
    goodbye_not_understood: "抱歉没能帮到您，稍后会有专人与您联系，再见。",
    max_turns: "感谢您的耐心，我们稍后再与您联系，再见。",
};

pub const EN: Texts = Texts {
    dnc: "Understood. We have added your number to our do-not-call list and will not call you again. Goodbye.",
    human: "Sure, I am transferring you to a colleague now. Please hold.",
    complaint: "I am very sorry about your experience. Let me transfer you to someone who can handle this right away.",
    anger: "I am very sorry for the trouble. Let me make this right for you.",
    identity: "I am an automated customer service assistant.",
    wrong_number: "Sorry to have bothered you. Goodbye.",
    busy_callback: "No problem, we will call you back later. Goodbye.",
    no_input: "Hello, are you still there?",
    no_match: "Sorry, I did not quite catch that.",
    goodbye_silent: "The line seems to be bad. We will call you back later. Goodbye.",
    goodbye_not_understood: "Sorry I could not help this time. A colleague will contact you. Goodbye.",
    max_turns: "Thank you for your patience. We will contact you again later. Goodbye.",
};

pub fn texts(lang: Language) -> &'static Texts {
    match lang {
        Language::Zh => &ZH,
        Language::En => &EN,
    }
}
