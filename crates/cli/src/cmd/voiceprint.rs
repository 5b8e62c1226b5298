//! `waihu voiceprint ...`: enrol and verify customers by voice, and the fraud
//! watchlist. Embeddings stay sealed in the store and are never printed.
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Utc;
use waihu_core::{mask_phone, CustomerId};
use waihu_voiceprint::decide::{Verdict, VERIFY_THRESHOLD, WATCH_THRESHOLD};
use waihu_voiceprint::encoder::{self, Encoder};
use waihu_voiceprint::registry::{self, Audio};

use crate::ctx::{print_json, Ctx};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// 声纹注册: add recordings of a customer (with consent) to their voiceprint.
    Enroll {
        #[arg(long)]
        customer: i64,
        /// WAV files of the customer speaking (any rate; ≥ 1 s of speech each).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// 声纹验证: is the speaker in FILE the enrolled customer? Exit status 0 on a
    /// match, 2 on no match or nothing enrolled, so scripts can branch on it.
    Verify {
        #[arg(long)]
        customer: i64,
        file: PathBuf,
        /// Cosine at or above which the voices are taken for the same.
        #[arg(long, default_value_t = VERIFY_THRESHOLD)]
        threshold: f32,
        #[arg(long)]
        json: bool,
    },
    /// 删除声纹: erase a customer's voiceprints.
    Erase {
        #[arg(long)]
        customer: i64,
    },
    /// 欺诈声纹名单: flag voices, check callers against them.
    #[command(subcommand)]
    Watch(WatchCmd),
    /// 一人多号: is the voice in FILE one heard lately on other numbers? Checked
    /// against the voices of live calls (`waihu run --voiceprint`) and earlier
    /// checks, then remembered (sealed, kept --keep-days). Exit status 3 and an
    /// alert when it has been heard on --numbers different numbers or more.
    Crowd {
        file: PathBuf,
        /// The number the voice is on.
        #[arg(long)]
        phone: String,
        #[arg(long, default_value = "CN")]
        region: String,
        /// The customer the number belongs to, if any (for erasure).
        #[arg(long)]
        customer: Option<i64>,
        #[arg(long, default_value_t = waihu_voiceprint::decide::CROWD_NUMBERS)]
        numbers: usize,
        #[arg(long, default_value_t = waihu_voiceprint::decide::SIGHTING_DAYS)]
        keep_days: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum WatchCmd {
    /// Flag the voice in FILE (a recording of a fraud call).
    Add {
        file: PathBuf,
        /// The operator's reference (a case number), not a name.
        #[arg(long)]
        label: String,
        /// The number the voice called from.
        #[arg(long)]
        phone: Option<String>,
        #[arg(long, default_value = "CN")]
        region: String,
    },
    /// Check a caller's voice: exit status 3 and an alert when it is watchlisted.
    Check {
        file: PathBuf,
        /// The number the caller is on (a watchlisted voice on a new number is reported as such).
        #[arg(long)]
        phone: Option<String>,
        #[arg(long, default_value = "CN")]
        region: String,
        #[arg(long, default_value_t = WATCH_THRESHOLD)]
        threshold: f32,
        #[arg(long)]
        json: bool,
    },
    /// List flagged voices (label, numbers heard on).
    List {
        #[arg(long)]
        json: bool,
    },
}

fn load_encoder(ctx: &Ctx) -> anyhow::Result<Encoder> {
    let dir = encoder::model_dir(&waihu_speech::piper::models_dir(ctx.home()));
    Ok(Encoder::load(&dir)?)
}

fn read(path: &Path) -> anyhow::Result<waihu_audio::wav::Pcm> {
    waihu_audio::wav::read_wav(path).with_context(|| format!("reading {}", path.display()))
}

fn normalize(phone: Option<&str>, region: &str) -> anyhow::Result<Option<String>> {
    phone
        .map(|p| {
            waihu_phone::normalize_phone(p, region)
                .map(|n| n.0)
                .map_err(anyhow::Error::msg)
        })
        .transpose()
}

/// Exit code for "the voice is not the customer's" (the command itself worked).
pub const EXIT_NO_MATCH: u8 = 2;
/// Exit code for "a watchlisted voice".
pub const EXIT_ALERT: u8 = 3;

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<std::process::ExitCode> {
    let rt = ctx.runtime()?;
    rt.block_on(async {
        let store = ctx.store().await?;
        let now = Utc::now();
        match cmd {
            Cmd::Enroll {
                customer,
                files,
                json,
            } => {
                let enc = load_encoder(ctx)?;
                for f in files {
                    let pcm = read(&f)?;
                    let audio = Audio { samples: &pcm.samples, rate: pcm.rate };
                    let source = format!("file:{}", f.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
                    let r = registry::enroll(&store, &enc, CustomerId(customer), audio, &source, now)
                        .await
                        .with_context(|| format!("enrolling {}", f.display()))?;
                    if json {
                        print_json(&r)?;
                    } else {
                        println!(
                            "已注册 / enrolled customer {customer}: {} recording(s) ({:.0} ms to embed)",
                            r.enrolments, r.embed_ms
                        );
                    }
                }
                Ok(std::process::ExitCode::SUCCESS)
            }
            Cmd::Verify {
                customer,
                file,
                threshold,
                json,
            } => {
                let enc = load_encoder(ctx)?;
                let pcm = read(&file)?;
                let audio = Audio { samples: &pcm.samples, rate: pcm.rate };
                let r = registry::verify(&store, &enc, CustomerId(customer), audio, threshold, now).await?;
                if json {
                    print_json(&r)?;
                } else {
                    let what = match r.result.verdict {
                        Verdict::Match => "同一人 / match",
                        Verdict::NoMatch => "不是同一人 / no match",
                        Verdict::NotEnrolled => "未注册声纹 / not enrolled",
                    };
                    println!(
                        "{what}: score {:.3} (threshold {:.2}), {:.0} ms",
                        r.result.score, r.result.threshold, r.embed_ms
                    );
                }
                Ok(if r.result.verdict == Verdict::Match {
                    std::process::ExitCode::SUCCESS
                } else {
                    std::process::ExitCode::from(EXIT_NO_MATCH)
                })
            }
            Cmd::Erase { customer } => {
                let n = registry::erase(&store, CustomerId(customer), now).await?;
                println!("已删除 / erased {n} voiceprint(s) of customer {customer}");
                Ok(std::process::ExitCode::SUCCESS)
            }
            Cmd::Watch(WatchCmd::Add { file, label, phone, region }) => {
                let enc = load_encoder(ctx)?;
                let phone = normalize(phone.as_deref(), &region)?;
                let pcm = read(&file)?;
                let audio = Audio { samples: &pcm.samples, rate: pcm.rate };
                let id = registry::watch_add(&store, &enc, &label, audio, phone.as_deref(), now).await?;
                println!("已加入欺诈声纹名单 / watchlisted as #{id} ({label})");
                Ok(std::process::ExitCode::SUCCESS)
            }
            Cmd::Watch(WatchCmd::Check { file, phone, region, threshold, json }) => {
                let enc = load_encoder(ctx)?;
                let phone = normalize(phone.as_deref(), &region)?;
                let pcm = read(&file)?;
                let audio = Audio { samples: &pcm.samples, rate: pcm.rate };
                let r = registry::watch_check(&store, &enc, audio, phone.as_deref(), threshold, now).await?;
                if json {
                    print_json(&r)?;
                } else {
                    match &r.hit {
                        Some(h) => println!(
                            "警报 / ALERT: watchlisted voice #{} ({}) score {:.3}{}{}",
                            h.id,
                            h.label,
                            h.score,
                            if h.new_number { ", 新号码 / on a new number" } else { "" },
                            phone.as_deref().map(|p| format!(" {}", mask_phone(p))).unwrap_or_default()
                        ),
                        None => println!("未命中 / no watchlisted voice ({:.0} ms)", r.embed_ms),
                    }
                }
                Ok(if r.alert {
                    std::process::ExitCode::from(EXIT_ALERT)
                } else {
                    std::process::ExitCode::SUCCESS
                })
            }
            Cmd::Crowd {
                file,
                phone,
                region,
                customer,
                numbers,
                keep_days,
                json,
            } => {
                let enc = load_encoder(ctx)?;
                let phone = normalize(Some(&phone), &region)?.unwrap_or_default();
                let pcm = read(&file)?;
                let probe = enc.embed_pcm(&pcm.samples, pcm.rate)?;
                let r = registry::crowd_check_embedding(
                    &store,
                    &probe,
                    &phone,
                    customer.map(CustomerId),
                    VERIFY_THRESHOLD,
                    numbers,
                    keep_days,
                    now,
                )
                .await?;
                if json {
                    print_json(&r)?;
                } else if r.alert {
                    println!(
                        "警报 / ALERT: 同一声音出现在 {} 个号码 / one voice on {} numbers (score {:.3}) {}",
                        r.numbers,
                        r.numbers,
                        r.score,
                        mask_phone(&phone)
                    );
                } else {
                    println!(
                        "heard on {} number(s) within {keep_days} days",
                        r.numbers
                    );
                }
                Ok(if r.alert {
                    std::process::ExitCode::from(EXIT_ALERT)
                } else {
                    std::process::ExitCode::SUCCESS
                })
            }
            Cmd::Watch(WatchCmd::List { json }) => {
                for w in store.watchlist().await? {
                    if json {
                        print_json(&serde_json::json!({"id": w.id, "label": w.label, "numbers": w.numbers}))?;
                    } else {
                        println!("#{} {} ({} number(s))", w.id, w.label, w.numbers);
                    }
                }
                Ok(std::process::ExitCode::SUCCESS)
            }
        }
    })
}

/// The voice check of live calls (`waihu run --voiceprint`): the callee's
/// speech is embedded once, then checked against the customer's enrolment and
/// the fraud watchlist in the store (each logged as its event, scores only).
pub struct LiveVoiceChecker {
    store: waihu_store::Store,
    enc: std::sync::Arc<Encoder>,
    /// One voice on this many numbers is an alert (0: never).
    pub crowd_numbers: usize,
    /// Days voices heard on calls are kept for that check.
    pub sighting_days: i64,
}

impl LiveVoiceChecker {
    pub fn load(ctx: &Ctx, store: waihu_store::Store) -> anyhow::Result<LiveVoiceChecker> {
        let enc = load_encoder(ctx).context(
            "--voiceprint needs the speaker encoder (scripts/deps/voiceprint.sh installs it)",
        )?;
        Ok(LiveVoiceChecker {
            store,
            enc: std::sync::Arc::new(enc),
            crowd_numbers: waihu_voiceprint::decide::CROWD_NUMBERS,
            sighting_days: waihu_voiceprint::decide::SIGHTING_DAYS,
        })
    }
}

impl waihu_bot::VoiceChecker for LiveVoiceChecker {
    fn check(
        &self,
        customer: Option<i64>,
        phone: String,
        samples: Vec<i16>,
        rate: u32,
        now: chrono::DateTime<Utc>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<waihu_bot::VoiceMatch, String>> + Send>,
    > {
        let store = self.store.clone();
        let enc = self.enc.clone();
        let (self_crowd, self_days) = (self.crowd_numbers, self.sighting_days);
        Box::pin(async move {
            // The LSTM runs for tens of milliseconds: off the runtime's threads.
            let probe = tokio::task::spawn_blocking(move || enc.embed_pcm(&samples, rate))
                .await
                .map_err(|e| format!("embedding task: {e}"))?
                .map_err(|e| e.to_string())?;
            let (verdict, score) = match customer {
                Some(id) => {
                    let v = registry::verify_embedding(
                        &store,
                        CustomerId(id),
                        &probe,
                        VERIFY_THRESHOLD,
                        now,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    (v.verdict.as_str().to_string(), v.score)
                }
                None => (Verdict::NotEnrolled.as_str().to_string(), 0.0),
            };
            let hit =
                registry::watch_check_embedding(&store, &probe, Some(&phone), WATCH_THRESHOLD, now)
                    .await
                    .map_err(|e| e.to_string())?;
            // Nobody flagged it, but one voice answering for many numbers is
            // an alert too. The stricter verification threshold: no operator
            // vouched for this voice being a fraud.
            let crowd = registry::crowd_check_embedding(
                &store,
                &probe,
                &phone,
                customer.map(CustomerId),
                VERIFY_THRESHOLD,
                self_crowd,
                self_days,
                now,
            )
            .await
            .map_err(|e| e.to_string())?;
            let crowd_alert = crowd.alert.then(|| {
                format!(
                    "同一声音出现在 {} 个号码 / one voice on {} numbers",
                    crowd.numbers, crowd.numbers
                )
            });
            Ok(waihu_bot::VoiceMatch {
                verdict,
                score,
                new_number: hit.as_ref().is_some_and(|h| h.new_number) || crowd.alert,
                alert: hit.map(|h| h.label).or(crowd_alert),
                numbers: (crowd.numbers > 1).then_some(crowd.numbers as u32),
            })
        })
    }
}
