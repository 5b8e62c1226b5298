//! `waihu messages ...`: the follow-up message outbox and replies (numbers and texts stay
//! sealed; only channel, template, status and times are shown).
use waihu_core::CampaignId;

use crate::ctx::{print_json, Ctx};

// Parsed once per process: the size of the `send` variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
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
    /// docs/messages.md), or SMS over CMPP 2.0/3.0 to a Chinese carrier's gateway (--cmpp), or
    /// through HTTP aggregators (--sms-http FILE: Alibaba Cloud SMS or Twilio, chosen per
    /// campaign). Every message passes the gate (quiet hours, per-number caps) first. Runs
    /// until Ctrl-C or --seconds. 发送短信和推送。
    Send {
        /// The SMSC (`host:port`).
        #[arg(long, required_unless_present_any = ["push", "sms_http", "cmpp"], conflicts_with_all = ["sms_http", "cmpp"])]
        smsc: Option<String>,
        /// A CMPP gateway (ISMG, `host:port`); the shared secret from
        /// WAIHU_CMPP_SECRET. --from is the SP's number (Src_Id). 中国移动 CMPP 网关。
        #[arg(long, conflicts_with = "sms_http", requires = "sp_code")]
        cmpp: Option<String>,
        /// The CMPP version the gateway's contract names: 2.0 or 3.0 (with --cmpp).
        #[arg(long, default_value = "2.0", value_parser = waihu_cmpp::pdu::Version::parse)]
        cmpp_version: waihu_cmpp::pdu::Version,
        /// The SP's enterprise code (企业代码, Source_Addr), 6 characters (with --cmpp).
        #[arg(long)]
        sp_code: Option<String>,
        /// The carrier-assigned service code (Service_Id, with --cmpp).
        #[arg(long, default_value = "")]
        service_id: String,
        #[arg(
            long,
            env = "WAIHU_CMPP_SECRET",
            default_value = "",
            hide_env_values = true
        )]
        cmpp_secret: String,
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
            Cmd::Send {
                smsc,
                cmpp,
                cmpp_version,
                sp_code,
                service_id,
                cmpp_secret,
                sms_http,
                push,
                system_id,
                password,
                from,
                window,
                seconds,
            } => {
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
                let cmpp = match cmpp {
                    Some(addr) => {
                        let sp_code = sp_code.unwrap_or_default();
                        anyhow::ensure!(
                            !sp_code.is_empty() && sp_code.len() <= 6 && sp_code.is_ascii(),
                            "--sp-code must be the 6-character enterprise code the carrier assigned (got {sp_code:?})"
                        );
                        anyhow::ensure!(
                            service_id.len() <= 10 && service_id.is_ascii(),
                            "--service-id is at most 10 ASCII characters (got {service_id:?})"
                        );
                        anyhow::ensure!(
                            from.len() <= 21 && from.bytes().all(|b| b.is_ascii_digit()),
                            "with --cmpp, --from is the SP's number (Src_Id, digits only; got {from:?})"
                        );
                        anyhow::ensure!(
                            !cmpp_secret.is_empty(),
                            "WAIHU_CMPP_SECRET is not set: the CMPP gateway's shared secret"
                        );
                        Some(waihu_messaging::CmppSenderConfig {
                            cmpp: waihu_cmpp::ClientConfig::new(
                                addr,
                                waihu_cmpp::Config {
                                    source_addr: sp_code,
                                    shared_secret: cmpp_secret,
                                    service_id,
                                    src_id: from.clone(),
                                    window,
                                    version: cmpp_version,
                                    ..Default::default()
                                },
                            ),
                            poll: std::time::Duration::from_millis(200),
                            rules: waihu_messaging::MessageRules::default(),
                        })
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
                let cmpps = cmpp.map(|cfg| {
                    tokio::spawn(waihu_messaging::run_cmpp_sender(store.clone(), cfg, stopped.clone()))
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
                if let Some(t) = cmpps {
                    let st = t.await??;
                    println!(
                        "短信 sms (CMPP): sent {}, failed {}, unknown {} ({} left unknown by an earlier run), reports {}, replies {} ({} opt-outs)",
                        st.sent, st.failed, st.unknown, st.reconciled_unknown, st.receipts, st.replies, st.opt_outs
                    );
                }
                if let Some(t) = https {
                    let st = t.await??;
                    println!(
                        "短信 sms (HTTP): sent {}, failed {}, retried {}, unknown {} ({} left unknown by an earlier run), receipts {}, replies {} ({} opt-outs), forged callbacks refused {}",
                        st.sent, st.failed, st.retried, st.unknown, st.reconciled_unknown, st.receipts, st.replies, st.opt_outs, st.forged_callbacks
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
