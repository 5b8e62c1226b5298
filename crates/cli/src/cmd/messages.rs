//! `waihu messages ...`: the follow-up message outbox and replies (numbers and texts stay
//! sealed; only channel, template, status and times are shown).
use waihu_core::CampaignId;

use crate::ctx::{print_json, Ctx};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// List messages, newest first: channel, template, status, delivery time.
    List {
        /// Only this campaign's messages (its id).
        #[arg(long)]
        campaign: Option<i64>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Counts per campaign, channel and template (queued, sent, delivered, failed,
    /// suppressed, unknown, delivery latency, conversions attributed to the last delivered
    /// message within --window-days) and replies per campaign. 消息统计。
    Report {
        #[arg(long)]
        campaign: Option<i64>,
        /// Conversion attribution window after a delivered message, in days.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=365))]
        window_days: u32,
        /// Conversation outcomes that count as a conversion (default: the KPI list).
        #[arg(long, value_delimiter = ',')]
        conversion: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run the outbox senders: queued SMS over SMPP 3.4 (--smsc; delivery receipts and
    /// replies are stored, an opt-out reply such as 退订/TD/STOP puts the number on DNC at
    /// once) and queued app pushes through APNs, FCM or a webhook (--push FILE, see
    /// docs/messages.md), or SMS through HTTP aggregators (--sms-http FILE: Alibaba Cloud
    /// SMS or Twilio, chosen per campaign). Every message passes the gate (quiet hours,
    /// per-number caps) first. Runs until Ctrl-C or --seconds. 发送短信和推送。
    Send {
        /// The SMSC (`host:port`).
        #[arg(long, required_unless_present_any = ["push", "sms_http"], conflicts_with = "sms_http")]
        smsc: Option<String>,
        /// The HTTP SMS gateways file (aliyun/twilio, per campaign; see docs/messages.md).
        #[arg(long)]
        sms_http: Option<std::path::PathBuf>,
        /// The push gateways file (apns/fcm/webhook).
        #[arg(long)]
        push: Option<std::path::PathBuf>,
        #[arg(long, default_value = "waihu")]
        system_id: String,
        #[arg(
            long,
            env = "WAIHU_SMPP_PASSWORD",
            default_value = "",
            hide_env_values = true
        )]
        password: String,
        /// Sender address (short code, long number or alphanumeric id).
        #[arg(long, default_value = "10690000")]
        from: String,
        /// submit_sm requests in flight at once.
        #[arg(long, default_value_t = 10)]
        window: usize,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
    },
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    ctx.runtime()?.block_on(async {
        let store = ctx.store().await?;
        match cmd {
            Cmd::List { campaign, limit, json } => {
                let rows = store.messages_list(campaign.map(CampaignId), limit).await?;
                for m in rows {
                    if json {
                        print_json(&m)?;
                    } else {
                        let t = |d: Option<chrono::DateTime<chrono::Utc>>| {
                            d.map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "-".into())
                        };
                        println!(
                            "{:>6} {:<3} campaign {:<5} {:<5} {:<16} {:<10} sent {:<19} delivered {}",
                            m.id,
                            m.direction,
                            m.campaign_id.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                            m.channel,
                            m.template,
                            m.status,
                            t(m.sent_at),
                            t(m.delivered_at),
                        );
                    }
                }
            }
            Cmd::Report { campaign, window_days, conversion, json } => {
                let mut attribution = waihu_store::Attribution {
                    window: chrono::Duration::days(window_days as i64),
                    ..Default::default()
                };
                if !conversion.is_empty() {
                    attribution.outcomes = conversion;
                }
                let r = store.messages_report_with(campaign.map(CampaignId), &attribution).await?;
                if json {
                    print_json(&r)?;
                } else {
                    let opt = |c: Option<i64>| c.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
                    let secs = |x: Option<f64>| x.map(|x| format!("{x:.1}s")).unwrap_or_else(|| "-".into());
                    println!(
                        "{:<8} {:<7} {:<18} {:>6} {:>6} {:>6} {:>9} {:>6} {:>10} {:>7} {:>7} {:>7} {:>11}",
                        "campaign", "channel", "template", "total", "queued", "sent", "delivered", "failed", "suppressed", "unknown", "p50", "p90", "conversions"
                    );
                    for x in &r.outgoing {
                        println!(
                            "{:<8} {:<7} {:<18} {:>6} {:>6} {:>6} {:>9} {:>6} {:>10} {:>7} {:>7} {:>7} {:>11}",
                            opt(x.campaign_id), x.channel, x.template, x.total, x.queued, x.sent, x.delivered,
                            x.failed, x.suppressed, x.unknown, secs(x.delivery_p50_s), secs(x.delivery_p90_s),
                            match x.conversion_rate {
                                Some(r) => format!("{} ({:.1}%)", x.conversions, r * 100.0),
                                None => x.conversions.to_string(),
                            }
                        );
                    }
                    for x in &r.replies {
                        println!(
                            "回复 replies: campaign {} {}: {} ({} 退订 opt-outs)",
                            opt(x.campaign_id), x.channel, x.replies, x.opt_outs
                        );
                    }
                }
            }
            Cmd::Send { smsc, sms_http, push, system_id, password, from, window, seconds } => {
                // Gateways are checked before anything runs: a bad file sends nothing.
                let push = match push {
                    Some(p) => {
                        let cfg = waihu_push::PushConfig::load(&p)?;
                        Some(std::sync::Arc::new(waihu_push::PushClient::new(&cfg)?))
                    }
                    None => None,
                };
                let sms_http = match sms_http {
                    Some(p) => {
                        let cfg = waihu_smshttp::SmsHttpConfig::load(&p)?;
                        Some(std::sync::Arc::new(waihu_smshttp::HttpSmsClient::new(cfg)?))
                    }
                    None => None,
                };
                let (stop, stopped) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    match seconds {
                        Some(s) => tokio::time::sleep(std::time::Duration::from_secs(s)).await,
                        None => {
                            let _ = tokio::signal::ctrl_c().await;
                        }
                    }
                    let _ = stop.send(true);
                });
                let sms = smsc.map(|smsc| {
                    let cfg = waihu_messaging::SenderConfig {
                        smpp: waihu_smpp::ClientConfig::new(
                            smsc,
                            waihu_smpp::Config { system_id, password, window, ..Default::default() },
                        ),
                        from,
                        poll: std::time::Duration::from_millis(200),
                        // Messages of no campaign get the default quiet hours and caps.
                        rules: waihu_messaging::MessageRules::default(),
                    };
                    tokio::spawn(waihu_messaging::run_sender(store.clone(), cfg, stopped.clone()))
                });
                let https = sms_http.map(|client| {
                    tokio::spawn(waihu_messaging::run_http_sender(
                        store.clone(),
                        client,
                        waihu_messaging::HttpSenderConfig::default(),
                        stopped.clone(),
                    ))
                });
                let pushes = push.map(|client| {
                    tokio::spawn(waihu_messaging::run_push_sender(
                        store.clone(),
                        client,
                        waihu_messaging::PushSenderConfig::default(),
                        stopped.clone(),
                    ))
                });
                if let Some(t) = sms {
                    let st = t.await??;
                    println!(
                        "短信 sms: sent {}, failed {}, unknown {} ({} left unknown by an earlier run), receipts {}, replies {} ({} opt-outs)",
                        st.sent, st.failed, st.unknown, st.reconciled_unknown, st.receipts, st.replies, st.opt_outs
                    );
                }
                if let Some(t) = https {
                    let st = t.await??;
                    println!(
                        "短信 sms (HTTP): sent {}, failed {}, retried {}, unknown {} ({} left unknown by an earlier run), receipts {}, forged callbacks refused {}",
                        st.sent, st.failed, st.retried, st.unknown, st.reconciled_unknown, st.receipts, st.forged_callbacks
                    );
                }
                if let Some(t) = pushes {
                    let st = t.await??;
                    println!(
                        "推送 push: sent {}, failed {} ({} invalid device tokens), retried {}, unknown {} ({} left unknown by an earlier run)",
                        st.sent, st.failed, st.token_invalid, st.retried, st.unknown, st.reconciled_unknown
                    );
                }
            }
        }
        store.close().await;
        Ok(())
    })
}
