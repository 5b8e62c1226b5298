//! A campaign's whole run, for any front end (`waihu run`, `waihu demo`, the
//! bench, a server): load and check the script and the campaign file, store
//! the campaign with its `id:` made the store's, mark it running, dial it with
//! [`crate::run`] until it stops, and mark it finished when its work is done.
//! The front end supplies the speech kit (which models, how many ASR slots)
//! and prints; the report's figures come from the one KPI definition
//! ([`waihu_core::kpi`]), so they are the dashboard's.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use tokio::sync::watch;
use waihu_bot::{Kit, Latency, ScriptKit};
use waihu_core::kpi::{self, Kpis, DEFAULT_CONVERSION_OUTCOMES};
use waihu_core::{CampaignId, CampaignState};
use waihu_store::{Customer, Store, StoreError};

use crate::{CampaignClock, DialerError, Options, Summary};

/// Whatever went wrong building a speech kit (the front end's business).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Script(#[from] waihu_dialog::LoadError),
    #[error("training the NLU")]
    Nlu(#[source] waihu_nlu::Error),
    #[error("{origin}")]
    Campaign {
        origin: String,
        #[source]
        source: waihu_campaign::ConfigError,
    },
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A segment's `script:` names no script file, or several (the file is ambiguous).
    #[error("{origin}:{line}: segments[{index}].script '{script}': {problem}")]
    SegmentScript {
        origin: String,
        line: usize,
        index: usize,
        script: String,
        problem: String,
    },
    #[error("campaign {0} vanished from the store")]
    Vanished(CampaignId),
    /// The installed 号段归属地 table is there but unreadable.
    #[error(transparent)]
    Geo(#[from] waihu_geo::FileError),
    #[error(transparent)]
    Kit(BoxError),
    #[error("binding the SIP endpoint")]
    Sip(#[source] waihu_engine::EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Dialer(#[from] DialerError),
    #[error("{0}")]
    Trunks(String),
    /// The agents file's registering agents cannot be served (a password unreadable).
    #[error("{0}")]
    Agents(String),
}

/// One live run of a campaign file.
pub struct CampaignSetup {
    /// The campaign file (YAML) as given; stored (or updated) under its `name`.
    pub campaign_yaml: String,
    /// Where the file came from, for messages.
    pub campaign_origin: String,
    /// The dialog script every call runs (`--script`); `None`: each customer gets
    /// the script their segment names (`segments[].script`, see [`segment_scripts`]).
    pub script: Option<PathBuf>,
    /// Where segment scripts are looked for (the campaign file's directory).
    pub campaign_dir: Option<PathBuf>,
    /// Where INVITEs go: the trunk / SBC (or the virtual callees).
    pub trunk: SocketAddr,
    /// Configured trunks (`--trunks FILE` or the campaign's); when not empty they carry the
    /// calls instead of `trunk`, and their live status goes to `<data_dir>/trunks.json`.
    pub trunks: Vec<waihu_campaign::trunks::TrunkConfig>,
    /// Local SIP address to bind.
    pub bind: SocketAddr,
    /// Sources the SIP flood guard never limits, beside the loopback address and the peers
    /// the run calls (`--sip-trust`: a Kamailio edge, a carrier's inbound gateways).
    pub sip_trust: Vec<std::net::IpAddr>,
    /// Calls at once (also bounded by the campaign's trunk channels).
    pub concurrency: usize,
    /// Script variables every call gets, before the customer's own.
    pub constants: Vec<(String, String)>,
    /// Only customers whose E.164 number starts with this.
    pub prefix: Option<String>,
    /// Only the first this many of those customers (by id): a short rehearsal.
    pub limit: Option<usize>,
    pub clock: Arc<CampaignClock>,
    /// Stop dialling when the campaign clock passes this.
    pub until: Option<DateTime<Utc>>,
    /// Who runs it, for the audit trail (`updated_by` of the campaign row).
    pub actor: String,
    /// Told how the run is going every 10 s of wall time, and at the end.
    pub progress: Option<crate::ProgressFn>,
    /// Templates for the campaign's fallback messages (see [`Options::messages`]).
    pub messages: Option<Arc<waihu_messaging::TemplateSet>>,
    /// Agents and queues (`--agents FILE`): a script's transfer to a queue
    /// becomes a warm transfer to an agent (see [`crate::handoff`]).
    pub agents: Option<waihu_acd::Config>,
}

/// Stores the campaign (its `id:` made the store's id), marks it running,
/// runs it to the end and marks it finished when the run completed it (see
/// [`crate::StopReason::completes_campaign`]); a shutdown or an operator's
/// stop leave the state alone. `make_kit` builds the speech kit once the
/// script (and so its language) is known. The script is copied to
/// `<data_dir>/scripts/` (the dashboard's script view reads it there) and
/// each call's WAV is spooled under `<data_dir>/spool/`. Every state change
/// is stamped with the campaign clock.
pub async fn run_campaign(
    store: &Store,
    setup: CampaignSetup,
    make_kit: impl FnOnce(&ScriptKit) -> Result<Kit, BoxError>,
    shutdown: watch::Receiver<bool>,
) -> Result<(CampaignId, Summary), LifecycleError> {
    let run = prepare(store, setup, make_kit).await?;
    let summary = crate::run(
        store.clone(),
        run.ep.clone(),
        run.opts,
        run.customers,
        shutdown,
    )
    .await?;
    let id = run.id;
    conclude(store, run.end, &summary).await?;
    Ok((id, summary))
}

/// [`run_campaign`] as one node of a cluster ([`crate::node`]): the same setup and the same
/// local store, with the contacts, the gate and the control shared through `node.cluster`.
pub async fn run_campaign_node(
    store: &Store,
    setup: CampaignSetup,
    node: crate::node::NodeOptions,
    make_kit: impl FnOnce(&ScriptKit) -> Result<Kit, BoxError>,
    shutdown: watch::Receiver<bool>,
) -> Result<(CampaignId, Summary, crate::node::NodeReport), LifecycleError> {
    let run = prepare(store, setup, make_kit).await?;
    let (summary, report) = crate::node::run_node(
        store.clone(),
        run.ep.clone(),
        run.opts,
        node,
        run.customers,
        shutdown,
    )
    .await?;
    let id = run.id;
    conclude(store, run.end, &summary).await?;
    Ok((id, summary, report))
}

/// A campaign ready to dial.
struct Prepared {
    id: CampaignId,
    opts: Options,
    ep: Arc<waihu_engine::sip::SipEndpoint>,
    customers: Vec<waihu_store::Customer>,
    end: Ending,
}

/// What is wound up after the run.
struct Ending {
    id: CampaignId,
    desk: Option<Arc<crate::handoff::Handoff>>,
    pool: Option<Arc<crate::trunks::TrunkPool>>,
    actor: String,
    clock: Arc<CampaignClock>,
}

async fn prepare(
    store: &Store,
    setup: CampaignSetup,
    make_kit: impl FnOnce(&ScriptKit) -> Result<Kit, BoxError>,
) -> Result<Prepared, LifecycleError> {
    let io = |what: &'static str, path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| LifecycleError::Io { what, path, source }
    };
    let mut campaign =
        waihu_campaign::Campaign::from_yaml(&setup.campaign_yaml).map_err(|source| {
            LifecycleError::Campaign {
                origin: setup.campaign_origin.clone(),
                source,
            }
        })?;
    // Local presence: caller IDs without a `region` get their number's
    // province/city from the 号段归属地 table, when it is installed.
    if let Some(geo) = waihu_geo::read_installed(store.home())? {
        let located = campaign.locate_caller_ids(&geo);
        tracing::info!(located, source = geo.source(), "caller IDs located");
    }
    // The scripts: the forced one, or one per segment (each file loaded once).
    let paths: Vec<PathBuf> = match &setup.script {
        Some(p) => vec![p.clone()],
        None => segment_scripts(
            &campaign,
            &setup.campaign_yaml,
            &setup.campaign_origin,
            setup.campaign_dir.as_deref(),
            store.data_dir(),
        )?,
    };
    let scripts_dir = store.data_dir().join("scripts");
    std::fs::create_dir_all(&scripts_dir).map_err(io("creating", &scripts_dir))?;
    let mut loaded: Vec<(PathBuf, String, Arc<ScriptKit>)> = Vec::new();
    for path in &paths {
        if loaded.iter().any(|(p, ..)| p == path) {
            continue;
        }
        let prog = waihu_dialog::load_file(path)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| prog.name.clone());
        let copy = scripts_dir.join(format!("{name}.yaml"));
        if &copy != path {
            std::fs::copy(path, &copy).map_err(io("copying the script to", &copy))?;
            copy_knowledge(&prog, &scripts_dir, store.data_dir())?;
        }
        let kit = ScriptKit::new(prog).map_err(LifecycleError::Nlu)?;
        if let Some((first, ..)) = loaded.iter().find(|(.., k)| k.lang() != kit.lang()) {
            // One speech kit per run: one language.
            return Err(LifecycleError::SegmentScript {
                origin: setup.campaign_origin.clone(),
                line: 1,
                index: 0,
                script: name,
                problem: format!(
                    "its language ({}) differs from {}'s; one run speaks one language / 各分群话术语言不一致",
                    kit.lang(),
                    first.display()
                ),
            });
        }
        loaded.push((path.clone(), name, Arc::new(kit)));
    }
    let by_path = |p: &PathBuf| {
        loaded
            .iter()
            .find(|(q, ..)| q == p)
            .map(|(_, n, k)| (n.clone(), k.clone()))
            .expect("every path was loaded")
    };
    let (script_name, script) = by_path(&paths[0]);
    let segment_scripts: Vec<(String, Arc<ScriptKit>)> = match &setup.script {
        Some(_) => Vec::new(),
        None => paths.iter().map(by_path).collect(),
    };
    let clock = setup.clock.clone();
    let actor = setup.actor.as_str();
    let id = store
        .campaign_create(&campaign.name, &setup.campaign_yaml, actor, clock.now())
        .await?;
    // The compliance checker matches events to campaign files by `id`: make the file say the store's.
    let spec = with_id(&setup.campaign_yaml, id.0);
    if spec != setup.campaign_yaml {
        store
            .campaign_create(&campaign.name, &spec, actor, clock.now())
            .await?;
    }
    campaign.id = id;
    let row = store
        .campaign_get(id)
        .await?
        .ok_or(LifecycleError::Vanished(id))?;
    if row.state != CampaignState::Running {
        store
            .campaign_set_state(id, CampaignState::Running, actor, clock.now())
            .await?;
    }
    let kit = make_kit(&script).map_err(LifecycleError::Kit)?;
    for (_, _, s) in &loaded {
        s.check_styles(&kit.styles)?;
    }
    let mut customers = customers_for(store, setup.prefix.as_deref()).await?;
    if let Some(n) = setup.limit {
        customers.truncate(n);
    }
    let ep = Arc::new(
        waihu_engine::sip::SipEndpoint::bind_with(setup.bind, "waihu", None, {
            let mut g = waihu_engine::waihu_sip::GuardConfig::default();
            g.trusted.extend(setup.sip_trust.iter().copied());
            Some(g)
        })
        .await
        .map_err(LifecycleError::Sip)?,
    );
    if let Some(cfg) = &setup.agents {
        // Agents whose softphones register to waihu: the run's endpoint is their registrar.
        if let Some(r) =
            crate::agent_registrar::registrar_for(cfg).map_err(LifecycleError::Agents)?
        {
            ep.set_registrar(r).map_err(LifecycleError::Sip)?;
        }
    }
    let spool = store.data_dir().join("spool");
    std::fs::create_dir_all(&spool).map_err(io("creating", &spool))?;
    let trunks = if setup.trunks.is_empty() {
        None
    } else {
        let pool = Arc::new(
            crate::trunks::TrunkPool::new(setup.trunks)
                .await
                .map_err(LifecycleError::Trunks)?,
        );
        pool.report_asr(kit.asr_waiting.clone(), kit.asr_capacity);
        let status = store.data_dir().join("trunks.json");
        tokio::spawn(pool.clone().run(ep.clone(), Some(status)));
        if !pool.wait_registered(Duration::from_secs(10)).await {
            tracing::warn!("not every trunk registered within 10 s; dialling on those that are up");
        }
        Some(pool)
    };
    let pool = trunks.clone();
    // The agents' desk: live in the store for `waihu serve` (docs/handoff.md).
    let desk = setup.agents.map(|cfg| {
        crate::handoff::Handoff::live(cfg, spool.clone(), store.clone(), setup.clock.clone())
    });
    let opts = Options {
        campaign_id: id,
        campaign,
        script_name,
        script,
        segment_scripts,
        kit: Arc::new(kit),
        trunk: setup.trunk,
        trunks,
        max_concurrent: setup.concurrency.max(1),
        ring_timeout: Duration::from_secs(25),
        max_duration: Duration::from_secs(240),
        constants: setup.constants,
        clock: setup.clock,
        until: setup.until,
        drain: Duration::from_secs(120),
        spool: spool.clone(),
        poll: Duration::from_millis(100),
        progress: setup.progress,
        progress_every: Duration::from_secs(10),
        messages: setup.messages,
        dnc_poll: Duration::from_millis(250),
        handoff: desk.clone(),
    };
    Ok(Prepared {
        id,
        opts,
        ep,
        customers,
        end: Ending {
            id,
            desk,
            pool,
            actor: actor.to_string(),
            clock,
        },
    })
}

async fn conclude(store: &Store, end: Ending, summary: &Summary) -> Result<(), LifecycleError> {
    let Ending {
        id,
        desk,
        pool,
        actor,
        clock,
    } = end;
    if let Some(desk) = desk {
        desk.close().await;
    }
    if let Some(pool) = pool {
        // The last calls' counts, for `waihu trunks status` after the run.
        let _ = pool.write_status(&store.data_dir().join("trunks.json"));
    }
    let state = store.campaign_get(id).await?.map(|r| r.state);
    // A Ctrl-C or an operator's stop leaves the state alone, so the next run continues it.
    if state == Some(CampaignState::Running) && summary.stopped_by.completes_campaign() {
        store
            .campaign_set_state(id, CampaignState::Finished, &actor, clock.now())
            .await?;
    }
    Ok(())
}

/// The document a script's `knowledge: {file}` names is read relative to the
/// script, so the copy under `<data_dir>/scripts/` (what the API's script
/// pages and later runs load) needs it where the same relative path leads
/// from there (`../knowledge/x.md` → `<data_dir>/knowledge/x.md`). A path that
/// would lead out of the data directory is left alone (with a warning): the
/// copy then fails to load on its own, but this run has the document already.
fn copy_knowledge(
    prog: &waihu_dialog::Program,
    scripts_dir: &std::path::Path,
    data_dir: &std::path::Path,
) -> Result<(), LifecycleError> {
    let Some(kn) = prog.knowledge.as_ref() else {
        return Ok(());
    };
    let (Some((rel, _)), Some(text)) = (&kn.file, &kn.document) else {
        return Ok(());
    };
    if std::path::Path::new(rel).is_absolute() {
        return Ok(());
    }
    let mut target = scripts_dir.to_path_buf();
    for c in std::path::Path::new(rel).components() {
        match c {
            std::path::Component::ParentDir => {
                target.pop();
            }
            std::path::Component::Normal(part) => target.push(part),
            _ => {}
        }
    }
    if !target.starts_with(data_dir) {
        tracing::warn!(
            file = %rel,
            "the script's knowledge document is outside the data directory; its copy under {} will not find it",
            scripts_dir.display()
        );
        return Ok(());
    }
    if std::fs::read_to_string(&target).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    let io = |what: &'static str, path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| LifecycleError::Io { what, path, source }
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
    }
    std::fs::write(&target, text).map_err(io("copying the knowledge document to", &target))
}

/// The script file of each campaign segment, in segment order. A segment's
/// `script:` is a file (`scripts/x.en.yaml`, relative to `campaign_dir`) or a
/// name looked up as `<name>.yaml` or `<name>.<lang>.yaml` in `campaign_dir`,
/// `campaign_dir/scripts/` and then `<data_dir>/scripts/` (where earlier runs
/// copied theirs). No file, or several languages of one name with no plain
/// `<name>.yaml` (`order_confirmation` with `.en` and `.zh`), is an error naming
/// the campaign file's line: the file must say which (`order_confirmation.zh`),
/// or `--script` must force one.
pub fn segment_scripts(
    campaign: &waihu_campaign::Campaign,
    yaml: &str,
    origin: &str,
    campaign_dir: Option<&std::path::Path>,
    data_dir: &std::path::Path,
) -> Result<Vec<PathBuf>, LifecycleError> {
    let base = campaign_dir
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let dirs = [base.clone(), base.join("scripts"), data_dir.join("scripts")];
    let mut out = Vec::with_capacity(campaign.segments.len());
    for (index, seg) in campaign.segments.iter().enumerate() {
        let name = seg.script.trim();
        let err = |problem: String| LifecycleError::SegmentScript {
            origin: origin.to_string(),
            line: segment_script_line(yaml, index, name),
            index,
            script: name.to_string(),
            problem,
        };
        if name.ends_with(".yaml") || name.ends_with(".yml") || name.contains('/') {
            let p = base.join(name);
            if !p.is_file() {
                return Err(err(format!(
                    "no such file {} / 话术文件不存在",
                    p.display()
                )));
            }
            out.push(p);
            continue;
        }
        let mut found: Option<PathBuf> = None;
        for dir in &dirs {
            let exact = dir.join(format!("{name}.yaml"));
            if exact.is_file() {
                found = Some(exact);
                break;
            }
            let mut variants: Vec<PathBuf> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let file = p.file_name().map(|f| f.to_string_lossy().into_owned());
                    file.as_deref()
                        .and_then(|f| f.strip_prefix(name))
                        .and_then(|rest| rest.strip_prefix('.'))
                        .and_then(|rest| rest.strip_suffix(".yaml"))
                        .is_some_and(|lang| matches!(lang, "zh" | "en"))
                })
                .collect();
            variants.sort();
            match variants.len() {
                0 => continue,
                1 => {
                    found = variants.pop();
                    break;
                }
                _ => {
                    let list: Vec<String> =
                        variants.iter().map(|p| p.display().to_string()).collect();
                    return Err(err(format!(
                        "ambiguous: {} — name one (e.g. `script: {name}.zh`) or pass --script / 话术不明确，请写明语言或用 --script 指定",
                        list.join(", ")
                    )));
                }
            }
        }
        match found {
            Some(p) => out.push(p),
            None => {
                return Err(err(format!(
                    "no {name}.yaml or {name}.<zh|en>.yaml in {} / 找不到话术文件",
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        }
    }
    Ok(out)
}

/// The line (1-based) of segment `index`'s `script:` in the campaign file: the
/// first line after `segments:` naming `script` and `name`, counting segments.
fn segment_script_line(yaml: &str, index: usize, name: &str) -> usize {
    let mut in_segments = false;
    let mut seen = 0;
    for (i, line) in yaml.lines().enumerate() {
        if line.starts_with("segments:") {
            in_segments = true;
            continue;
        }
        if in_segments {
            if !line.starts_with(' ') && !line.starts_with('-') && !line.trim().is_empty() {
                break;
            }
            if line.contains("script") {
                if seen == index && line.contains(name) {
                    return i + 1;
                }
                seen += 1;
            }
        }
    }
    1
}

/// The stored customers, optionally only those whose E.164 number starts with `prefix`.
pub async fn customers_for(
    store: &Store,
    prefix: Option<&str>,
) -> Result<Vec<Customer>, StoreError> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.customers(after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.id.0;
        out.extend(
            page.into_iter()
                .filter(|c| prefix.is_none_or(|p| c.phone.starts_with(p))),
        );
    }
    Ok(out)
}

/// The campaign file with its top-level `id:` set to `id`.
pub fn with_id(yaml: &str, id: i64) -> String {
    let mut out = String::with_capacity(yaml.len() + 8);
    let mut done = false;
    for line in yaml.split_inclusive('\n') {
        if !done && line.starts_with("id:") {
            let comment = line.find('#').map(|i| &line[i..]).unwrap_or("\n");
            out.push_str(&format!("id: {id}"));
            if comment.starts_with('#') {
                out.push_str(&format!("                            {comment}"));
            } else {
                out.push('\n');
            }
            done = true;
        } else {
            out.push_str(line);
        }
    }
    if !done {
        out = format!("id: {id}\n{out}");
    }
    out
}

/// A stored campaign's KPIs over all its attempts, from the same rollup and
/// the same arithmetic as the API's `/api/kpis?campaign=N` (with the default
/// conversion outcomes): what the dashboard shows for it.
pub async fn campaign_kpis(store: &Store, id: CampaignId) -> Result<Kpis, StoreError> {
    // Every hour the rollup can hold: a campaign clock may run anywhere in time.
    let from = DateTime::<Utc>::UNIX_EPOCH;
    let to = Utc
        .with_ymd_and_hms(9999, 12, 31, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let rows = store.kpi_rollup(from, to, Some(id)).await?;
    let conversion: Vec<String> = DEFAULT_CONVERSION_OUTCOMES.map(String::from).to_vec();
    Ok(kpi::totals(&rows, &conversion))
}

/// What a run's report prints about its calls: counts (only those that
/// occurred) and the connect rate, all from one [`Kpis`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Finished attempts.
    pub attempts: usize,
    /// 接通率: connected (answered or voicemail) / attempts.
    pub connect_rate: f64,
    /// Attempts per telephony outcome.
    pub outcomes: BTreeMap<String, usize>,
    /// Conversations per business outcome.
    pub business: BTreeMap<String, usize>,
    /// Conversations per intention level.
    pub levels: BTreeMap<String, usize>,
}

impl From<&Kpis> for Figures {
    fn from(k: &Kpis) -> Figures {
        let counts = |m: &BTreeMap<String, i64>| {
            m.iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| (k.clone(), usize::try_from(*n).unwrap_or(0)))
                .collect()
        };
        Figures {
            attempts: usize::try_from(k.attempts).unwrap_or(0),
            connect_rate: k.connect_rate.unwrap_or(0.0),
            outcomes: counts(&k.outcomes),
            business: counts(&k.conversation_outcomes),
            levels: counts(&k.levels),
        }
    }
}

/// 9:30 on `now`'s date in `zone`, as UTC: where a rehearsal's campaign clock
/// starts (the demo, `bench voice`), so every callee is inside its calling window.
pub fn business_morning<Z: TimeZone>(zone: &Z, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.with_timezone(zone).date_naive();
    let t = today.and_hms_opt(9, 30, 0).unwrap_or_default();
    zone.from_local_datetime(&t)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or(now)
}

/// Percentiles and the mean breakdown of turn latencies.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyStats {
    pub turns: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub mean: Latency,
}

pub fn latency_stats<'a>(lat: impl Iterator<Item = &'a Latency>) -> LatencyStats {
    let all: Vec<&Latency> = lat.collect();
    if all.is_empty() {
        return LatencyStats::default();
    }
    let mut totals: Vec<f64> = all.iter().map(|l| l.total_ms).collect();
    totals.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| totals[((totals.len() - 1) as f64 * p).round() as usize];
    let n = all.len() as f64;
    let mean = |f: &dyn Fn(&Latency) -> f64| {
        (all.iter().map(|l| f(l)).sum::<f64>() / n * 10.0).round() / 10.0
    };
    LatencyStats {
        turns: all.len(),
        p50_ms: pct(0.5),
        p95_ms: pct(0.95),
        mean: Latency {
            total_ms: mean(&|l| l.total_ms),
            endpoint_ms: mean(&|l| l.endpoint_ms),
            asr_ms: mean(&|l| l.asr_ms),
            asr_wait_ms: mean(&|l| l.asr_wait_ms),
            nlu_ms: mean(&|l| l.nlu_ms),
            dialog_ms: mean(&|l| l.dialog_ms),
            tts_first_ms: mean(&|l| l.tts_first_ms),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scripts_knowledge_document_follows_its_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, repo) = (tmp.path().join("data"), tmp.path().join("repo"));
        let scripts = data.join("scripts");
        std::fs::create_dir_all(repo.join("scripts")).unwrap();
        std::fs::create_dir_all(repo.join("knowledge")).unwrap();
        std::fs::create_dir_all(&scripts).unwrap();
        let script = "name: faq\nlanguage: zh\nknowledge:\n  file: ../knowledge/faq.md\n\
                      states:\n  a:\n    say: 您好\n    end: done\n";
        std::fs::write(repo.join("scripts/faq.zh.yaml"), script).unwrap();
        std::fs::write(repo.join("knowledge/faq.md"), "# 滤芯\n每6个月更换。\n").unwrap();
        let prog = waihu_dialog::load_file(&repo.join("scripts/faq.zh.yaml")).unwrap();
        std::fs::copy(
            repo.join("scripts/faq.zh.yaml"),
            scripts.join("faq.zh.yaml"),
        )
        .unwrap();
        copy_knowledge(&prog, &scripts, &data).unwrap();
        let copy = waihu_dialog::load_file(&scripts.join("faq.zh.yaml")).unwrap();
        assert!(copy.knowledge.unwrap().document.unwrap().contains("6个月"));
        // A path leading out of the data directory is not followed.
        let far = waihu_dialog::load_str(&script.replace("../knowledge", "../../x"), "f.yaml");
        let mut far = far.unwrap();
        far.knowledge.as_mut().unwrap().document = Some("x".into());
        copy_knowledge(&far, &scripts, &data).unwrap();
        assert!(!tmp.path().join("x").exists());
    }

    #[test]
    fn with_id_rewrites_or_adds_the_id_line() {
        assert_eq!(
            with_id("id: 0  # set\nname: x\n", 7).lines().next(),
            Some("id: 7                            # set")
        );
        assert_eq!(with_id("name: x\nid: 3\n", 9), "name: x\nid: 9\n");
        assert_eq!(with_id("name: x\n", 2), "id: 2\nname: x\n");
    }

    #[test]
    fn segment_scripts_resolve_by_name_and_ambiguity_is_an_error_with_the_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let data = dir.join("data");
        std::fs::create_dir_all(dir.join("scripts")).unwrap();
        for f in [
            "order.en.yaml",
            "order.zh.yaml",
            "care.yaml",
            "survey.en.yaml",
        ] {
            std::fs::write(dir.join("scripts").join(f), "name: x\n").unwrap();
        }
        std::fs::write(dir.join("own.yaml"), "name: x\n").unwrap();
        let yaml = |order: &str| {
            format!(
                "name: c\nsegments:\n  - {{name: a, script: care}}\n  - {{name: b, script: survey}}\n  - {{name: c, script: {order}}}\n  - {{name: d, script: own.yaml}}\n"
            )
        };
        let resolve = |y: &str| {
            let campaign = waihu_campaign::Campaign::from_yaml(y).unwrap();
            segment_scripts(&campaign, y, "camp.yaml", Some(dir), &data)
        };
        // `order` has an English and a Chinese file: the campaign must say which.
        let e = resolve(&yaml("order")).unwrap_err().to_string();
        assert!(
            e.starts_with("camp.yaml:5: segments[2].script 'order'"),
            "{e}"
        );
        assert!(
            e.contains("ambiguous") && e.contains("order.en.yaml") && e.contains("order.zh.yaml"),
            "{e}"
        );
        let got = resolve(&yaml("order.zh")).unwrap();
        assert_eq!(
            got,
            [
                dir.join("scripts/care.yaml"),
                dir.join("scripts/survey.en.yaml"),
                dir.join("scripts/order.zh.yaml"),
                dir.join("own.yaml"),
            ]
        );
        let e = resolve(&yaml("nothing")).unwrap_err().to_string();
        assert!(
            e.contains("segments[2].script 'nothing'") && e.contains("找不到"),
            "{e}"
        );
    }

    #[test]
    fn business_morning_is_half_past_nine_local_on_the_same_date() {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 22, 0, 0).unwrap();
        // 22:00 UTC is already Dec 4 in Shanghai (UTC+8): 9:30 there is 01:30 UTC.
        assert_eq!(
            business_morning(&chrono_tz::Asia::Shanghai, now),
            Utc.with_ymd_and_hms(2026, 12, 4, 1, 30, 0).unwrap()
        );
        // And Dec 3 in New York (UTC-5): 14:30 UTC.
        assert_eq!(
            business_morning(&chrono_tz::America::New_York, now),
            Utc.with_ymd_and_hms(2026, 12, 3, 14, 30, 0).unwrap()
        );
    }
}
