//! Short versions of `waihu bench voiceprint` and `waihu bench amd`: the
//! measurements run end to end and say something true. Needs espeak-ng and
//! the speaker encoder (installed here by scripts/deps/voiceprint.sh); without
//! them the tests skip, and fail under CI.
use std::path::{Path, PathBuf};
use std::process::Command;

fn models() -> Option<PathBuf> {
    let m = std::env::var_os("WAIHU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let data = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
                });
            data.join("waihu/models")
        });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/deps/voiceprint.sh");
    let _ = Command::new("bash").arg(script).status();
    let model =
        waihu_voiceprint::encoder::model_dir(&m).join(waihu_voiceprint::encoder::MODEL_FILE);
    if !waihu_testkit::have_peer_at("speaker encoder (scripts/deps/voiceprint.sh)", &model)
        || !waihu_testkit::have_peer("espeak-ng")
    {
        return None;
    }
    Some(m)
}

#[test]
fn voiceprint_bench_separates_a_few_voices() {
    let Some(m) = models() else { return };
    let r = waihu_bench::voiceprint::measure(&m, 4).unwrap();
    assert_eq!(r.voices, 4);
    assert_eq!((r.genuine_trials, r.impostor_trials), (8, 24));
    assert!(r.same_voice_cosine > r.cross_voice_cosine, "{r:?}");
    assert!(r.eer < 0.5, "{r:?}");
}

#[test]
fn amd_bench_finds_every_voicemail_by_its_beep_or_greeting() {
    let Some(m) = models() else { return };
    let r = waihu_bench::amd::measure(&m, false, false).unwrap();
    let audio = &r.detectors[0];
    assert_eq!(audio.clips, 28);
    assert!(audio.voicemail_recall >= 0.99, "{audio:?}");
    assert!(audio.human_recall > 0.5, "{audio:?}");
}
