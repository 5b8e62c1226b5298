//! Simplified Chinese for everything downstream. Whisper (and servers that run
//! it) often write Mandarin in Traditional characters; the NLU, the scripts and
//! the transcripts operators read are Simplified, so recognised Mandarin is
//! converted (OpenCC's Traditional → Simplified tables, phrases first, through
//! `ferrous-opencc`, Apache-2.0). Simplified text passes through unchanged.
use std::sync::OnceLock;

use ferrous_opencc::config::BuiltinConfig;
use ferrous_opencc::OpenCC;

fn converter() -> Option<&'static OpenCC> {
    static CC: OnceLock<Option<OpenCC>> = OnceLock::new();
    CC.get_or_init(|| OpenCC::from_config(BuiltinConfig::T2s).ok())
        .as_ref()
}

/// `text` in Simplified characters. If the built-in tables cannot be loaded
/// (they are compiled into the binary, so this does not happen in practice),
/// the text is returned as it is rather than lost.
pub fn to_simplified(text: &str) -> String {
    match converter() {
        Some(cc) => cc.convert(text),
        None => text.to_string(),
    }
}

/// Whether a language code names Chinese (`zh`, `zh-CN`, `yue`...).
pub fn is_chinese(lang: &str) -> bool {
    let l = lang.to_ascii_lowercase();
    l == "zh" || l.starts_with("zh-") || l.starts_with("zh_") || l == "yue" || l == "cmn"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traditional_becomes_simplified_and_simplified_stays() {
        assert_eq!(
            to_simplified("請問您的訂單地址是上海市浦東新區嗎？"),
            "请问您的订单地址是上海市浦东新区吗？"
        );
        let s = "好的，明天下午三点送到，谢谢。";
        assert_eq!(to_simplified(s), s);
        assert_eq!(to_simplified("OK, 138 1234 5678"), "OK, 138 1234 5678");
        assert!(is_chinese("zh") && is_chinese("zh-TW") && !is_chinese("en"));
    }
}
