//! One dialer node of a cluster (`waihu run --node NAME`): several nodes share a campaign
//! through one PostgreSQL ([`waihu_cluster`]) with no coordinator process.
//!
//! The node's planner keeps its job (calling windows in the callee's zone, retries, callbacks,
//! trunk and caller-ID choice, the answer model), but only over the contacts this node holds a
//! lease on. Each turn of the loop:
//! - it claims due contacts up to twice its channels (`FOR UPDATE SKIP LOCKED`);
//! - every dial the planner makes goes through the shared gate ([`Cluster::begin_attempt`]):
//!   DNC, one open call per number, the per-number caps over all nodes, the campaign's shared
//!   channels and CPS grid. A refused dial never goes out; the planner gets the contact back
//!   (or lets it go, as the gate decided);
//! - a contact the planner will not dial soon (a retry in hours, a closed window) goes back
//!   to the cluster with its due time, so a node holds only work it is about to do; one the
//!   planner finished without a dial is finished in the cluster;
//! - when a call ends its outcome and the contact's next due time go to the cluster in one
//!   transaction ([`Cluster::end_attempt`]), and the node lets the contact go.
//!
//! A heartbeat renews the node's leases; every node reaps nodes silent past the timeout
//! (their open calls end `failed` in the log, their contacts go to the survivors). Campaign
//! control (start, pause, stop) arrives by `LISTEN` within milliseconds, with a poll at each
//! heartbeat as the fallback. The node's own store (its SQLite data directory) keeps its calls,
//! turns and recordings as a single-node run does; the cluster's log is the merged one the
//! compliance checker reads (`waihu cluster check`).
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use waihu_campaign::planner::{ContactRef, ContactStatus, Planner};
use waihu_cluster::{Attempt, CampaignSpec, Cluster, Lease, NewContact, Next, NodeStatus};
use waihu_core::{CallId, CampaignState, CustomerId, PhoneIndex};
use waihu_engine::sip::SipEndpoint;
use waihu_store::{Customer, Store};

use crate::{
    finish, load_experiments, plan_dials, prepare_contacts, reconcile, start_call, DialerError,
    Finished, Options, RunProgress, StopReason, Summary,
};

/// How a node takes part in its cluster.
pub struct NodeOptions {
    pub cluster: Cluster,
    /// A lease lasts this long past the last heartbeat.
    pub lease_ttl: chrono::Duration,
    /// How often the node proves itself alive (renewing its leases), reaps lost nodes and
    /// re-reads the campaign state.
    pub heartbeat: Duration,
    /// A node silent this long is declared lost by the others.
    pub lost_after: chrono::Duration,
    /// Concurrent calls over all nodes (the campaign's shared channels).
    pub channels: u32,
    /// New calls per second over all nodes.
    pub cps: f64,
}

/// What the node did besides the calls (in the run's JSON, next to the summary).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NodeReport {
    pub node: String,
    /// Contacts this node enqueued (the others had enqueued the rest already).
    pub enqueued: u64,
    /// Leases taken.
    pub claimed: usize,
    /// Dials the shared gate refused, by reason.
    pub refused: BTreeMap<String, usize>,
    /// Contacts handed back to the cluster undialled (a later due time).
    pub handed_back: usize,
    /// Contacts the planner finished without a dial (no consent, DNC, attempts used).
    pub finished_undialled: usize,
    /// Nodes this node declared lost.
    pub reaped: Vec<String>,
    /// Calls whose end the cluster had already logged (this node was reaped meanwhile).
    pub ended_elsewhere: usize,
}

/// A contact this node holds.
struct Held {
    lease: Lease,
    customer: Customer,
    attempt: Option<Attempt>,
}

fn state_of(s: &str) -> Option<CampaignState> {
    match s {
        "started" => Some(CampaignState::Running),
        "paused" => Some(CampaignState::Paused),
        "created" => Some(CampaignState::Created),
        "stopped" => Some(CampaignState::Stopped),
        "finished" => Some(CampaignState::Finished),
        _ => None,
    }
}

/// Contacts due further off than this go back to the cluster rather than wait here.
const KEEP_WITHIN: chrono::Duration = chrono::Duration::seconds(30);

/// Runs this node's share of the campaign until every contact in the cluster is finished, the
/// campaign is stopped, the node is declared lost, or `shutdown` fires.
pub async fn run_node(
    store: Store,
    ep: Arc<SipEndpoint>,
    opts: Options,
    node: NodeOptions,
    customers: Vec<Customer>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(Summary, NodeReport), DialerError> {
    let opts = Arc::new(opts);
    let cl = node.cluster.clone();
    let mut report = NodeReport {
        node: cl.node().to_string(),
        ..NodeReport::default()
    };
    let mut summary = Summary::new(reconcile(&store, opts.clock.now()).await?);
    let mut campaign = opts.campaign.clone();
    campaign.id = opts.campaign_id;
    if let Some(pool) = &opts.trunks {
        campaign.trunks = pool.planner_trunks();
    }
    if let Some(ac) = &campaign.agent_connect {
        return Err(DialerError::Node(format!(
            "pacing.connect: agent (queue {:?}) paces dials by this node's agents; run it on one node / 直连坐席活动只能单节点运行",
            ac.queue
        )));
    }
    let spec = CampaignSpec {
        id: campaign.id,
        name: campaign.name.clone(),
        channels: node.channels,
        cps: node.cps,
        caps: waihu_cluster::Caps {
            per_day: campaign.per_number_per_day,
            per_week: campaign.per_number_per_week,
            max_attempts: campaign.max_attempts,
        },
    };
    let mut planner = Planner::new(campaign);
    let experiments = load_experiments(&store, &opts).await?;
    let inputs = prepare_contacts(&store, &opts, &mut planner, customers, &mut summary).await?;
    let now = opts.clock.now();
    cl.join(now).await?;
    cl.upsert_campaign(&spec, now).await?;
    // Every node enqueues what it has; a contact another node enqueued first is left alone.
    let vault = store.vault();
    let mut batch = Vec::with_capacity(inputs.len());
    for (c, ci) in &inputs {
        batch.push(NewContact {
            customer: c.id,
            phone: PhoneIndex(vault.blind_index(&c.phone)),
            tz: ci.tz.name().to_string(),
            due: now,
        });
    }
    report.enqueued = cl.enqueue(spec.id, &batch).await?;
    // Numbers this store has on its do-not-call list hold on every node.
    for (c, _) in &inputs {
        if store.dnc_contains(&c.phone, &spec.name).await? {
            cl.add_dnc(&PhoneIndex(vault.blind_index(&c.phone)), "dnc", now)
                .await?;
        }
    }
    if cl.campaign_state(spec.id).await?.as_deref() == Some("created") {
        cl.set_campaign_state(spec.id, "started", &format!("node:{}", cl.node()), now)
            .await?;
    }
    summary.contacts = inputs.len();
    let mut waiting: HashMap<CustomerId, (Customer, waihu_campaign::ContactInput)> =
        inputs.into_iter().map(|(c, ci)| (c.id, (c, ci))).collect();
    let mut held: HashMap<ContactRef, Held> = HashMap::new();

    // Control: LISTEN for state changes (ours only), polled at each heartbeat as well.
    let (state_tx, mut state_rx) = watch::channel(cl.campaign_state(spec.id).await?);
    let _stop_listening = {
        let mut listener = cl.control_listener().await?;
        let tx = state_tx.clone();
        let id = spec.id;
        AbortOnDrop(tokio::spawn(async move {
            while let Ok(c) = listener.recv().await {
                if c.campaign == id {
                    let _ = tx.send(Some(c.state));
                }
            }
        }))
    };
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
    let mut live = 0usize;
    let mut seq = 0u64;
    let mut stopping: Option<StopReason> = None;
    let mut drain_until: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(opts.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The heartbeat runs on its own task: however long a turn of the dial loop takes (a
    // slow store, a loaded machine), the node stays alive and its leases stay renewed.
    let (beat_tx, mut beat_rx) = mpsc::unbounded_channel::<Result<Beat, DialerError>>();
    let beater = {
        let cl = cl.clone();
        let clock = opts.clock.clone();
        let (ttl, lost_after, every, id) =
            (node.lease_ttl, node.lost_after, node.heartbeat, spec.id);
        let state_tx = state_tx.clone();
        tokio::spawn(async move {
            let mut beat = tokio::time::interval(every);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                beat.tick().await;
                let r = async {
                    let now = clock.now();
                    let status = cl.heartbeat(now, ttl).await?;
                    let reaped = cl.reap(now, lost_after).await?;
                    let _ = state_tx.send(cl.campaign_state(id).await?);
                    let pending = cl.pending(id).await?;
                    Ok::<_, DialerError>(Beat {
                        status,
                        reaped,
                        pending,
                    })
                }
                .await;
                let failed = r.is_err();
                if beat_tx.send(r).is_err() || failed {
                    break;
                }
            }
        })
    };
    let _stop_beating = AbortOnDrop(beater);
    let mut can_shut_down = true;
    let started = tokio::time::Instant::now();
    let mut last_progress = started;
    let mut cluster_pending = cl.pending(spec.id).await?;
    let run_tag = now.format("%H%M%S%3f").to_string();
    let progress = |summary: &Summary, pending: usize, live: usize| {
        if let Some(p) = &opts.progress {
            let elapsed = started.elapsed().as_secs_f64();
            p(&RunProgress::new(
                summary.contacts,
                pending,
                summary,
                live,
                elapsed,
            ));
        }
    };
    loop {
        if last_progress.elapsed() >= opts.progress_every {
            last_progress = tokio::time::Instant::now();
            progress(
                &summary,
                cluster_pending.min(usize::MAX as u64) as usize,
                live,
            );
        }
        tokio::select! {
            Some(f) = done_rx.recv() => {
                live -= 1;
                let now = opts.clock.now();
                let contact = f.contact;
                let (outcome, duration) = (f.result.outcome, f.result.duration_s);
                let conversation = f.result.conversation.clone();
                let dnc_phone = f.dnc.then(|| PhoneIndex(vault.blind_index(&f.result.phone)));
                finish(&store, &mut planner, &opts, &mut summary, f).await?;
                if let Some(phone) = dnc_phone {
                    cl.add_dnc(&phone, "callee asked on a call", now).await?;
                }
                let next = match planner.status(contact, now) {
                    Some(ContactStatus::Waiting(at)) => Next::RetryAt(at),
                    // Whichever node is free then calls back, ahead of other contacts.
                    Some(ContactStatus::Callback(at)) => Next::Callback(at),
                    Some(ContactStatus::Ready | ContactStatus::InFlight) => Next::RetryAt(now),
                    Some(ContactStatus::Done) | None => Next::Done,
                };
                planner.release(contact);
                if let Some(h) = held.remove(&contact) {
                    if let Some(a) = &h.attempt {
                        if !cl.end_attempt(a, outcome, None, duration, conversation, next, now).await? {
                            report.ended_elsewhere += 1;
                        }
                    }
                }
                continue;
            }
            changed = shutdown.changed(), if can_shut_down => {
                if changed.is_err() {
                    can_shut_down = false;
                } else if *shutdown.borrow() {
                    stopping.get_or_insert(StopReason::Shutdown);
                }
            }
            _ = state_rx.changed() => {}
            Some(b) = beat_rx.recv() => {
                let b = b?;
                match b.status {
                    NodeStatus::Up => {}
                    NodeStatus::Lost => {
                        tracing::warn!(node = cl.node(), "declared lost by the cluster: no new dials");
                        stopping = Some(StopReason::NodeLost);
                    }
                    NodeStatus::Draining => {
                        if stopping.is_none() {
                            tracing::info!(node = cl.node(), live, "draining: no new dials, leases handed back");
                        }
                        stopping.get_or_insert(StopReason::Drained);
                    }
                }
                if !b.reaped.is_empty() {
                    tracing::warn!(reaped = ?b.reaped, "nodes declared lost; their contacts go to the survivors");
                    report.reaped.extend(b.reaped);
                }
                cluster_pending = b.pending;
                continue;
            }
            _ = tick.tick() => {}
        }
        let now = opts.clock.now();
        if stopping.is_none() {
            let state = state_rx.borrow().clone();
            match state.as_deref().and_then(state_of) {
                Some(CampaignState::Running) => {}
                Some(CampaignState::Paused | CampaignState::Created) => continue,
                // The last node to see nothing pending marks the campaign finished; the
                // others learn it here (an operator's `finished` with work left says so).
                Some(CampaignState::Finished)
                    if held.is_empty() && cl.pending(spec.id).await? == 0 =>
                {
                    stopping = Some(StopReason::EveryContactFinished)
                }
                Some(other) => stopping = Some(StopReason::Campaign(other)),
                None => {
                    return Err(DialerError::Node(format!(
                        "campaign {} is not in the cluster (state {state:?})",
                        spec.id.0
                    )))
                }
            }
            if opts.until.is_some_and(|u| now >= u) {
                stopping = Some(StopReason::EndOfDay);
            }
        }
        if let Some(why) = &stopping {
            // Contacts not being called go back to the others at once.
            let idle: Vec<ContactRef> = held
                .iter()
                .filter(|(_, h)| h.attempt.is_none())
                .map(|(r, _)| *r)
                .collect();
            for r in idle {
                if let Some(h) = held.remove(&r) {
                    planner.release(r);
                    if *why != StopReason::NodeLost {
                        cl.release(&h.lease, now).await?;
                        report.handed_back += 1;
                    }
                }
            }
            if let Some(stop) = crate::stop_now(why, live, &mut drain_until, opts.drain) {
                summary.stopped_by = stop;
                break;
            }
            continue;
        }
        // Claim up to twice the channels: enough to keep them busy, few enough to share.
        let want = opts.max_concurrent * 2;
        if held.len() < want {
            let leases = cl
                .claim(spec.id, (want - held.len()) as u32, now, node.lease_ttl)
                .await?;
            report.claimed += leases.len();
            for lease in leases {
                let Some((c, ci)) = waiting.get(&lease.customer).cloned() else {
                    // Not in this node's store: another node will have it.
                    tracing::warn!(
                        customer = lease.customer.0,
                        "leased a contact this node's store does not hold; handed back"
                    );
                    cl.release(&lease, now + chrono::Duration::seconds(60))
                        .await?;
                    continue;
                };
                match planner.add_contact(ci) {
                    Ok(r) => {
                        planner.set_prior_attempts(r, lease.attempts);
                        if let Some(at) = lease.callback {
                            planner.set_callback(r, at);
                        }
                        held.insert(
                            r,
                            Held {
                                lease,
                                customer: c,
                                attempt: None,
                            },
                        );
                    }
                    Err(e) => {
                        summary.skipped_contacts.push(e.to_string());
                        cl.finish_contact(&lease, "invalid").await?;
                        waiting.remove(&lease.customer);
                    }
                }
            }
        }
        let free = opts.max_concurrent.saturating_sub(live);
        let dials = plan_dials(&store, &opts, &mut planner, &mut summary, free, now).await?;
        let mut gate_closed = false;
        for d in dials {
            let Some(h) = held.get_mut(&d.contact) else {
                planner.release(d.contact);
                continue;
            };
            if gate_closed {
                // The campaign's shared channels or CPS are spent: try again next turn.
                readd(&mut planner, &mut held, &waiting, d.contact);
                continue;
            }
            seq += 1;
            let call_id = CallId(format!(
                "{}-{}-{run_tag}-{seq}",
                opts.campaign_id.0,
                cl.node()
            ));
            let channel = planner
                .campaign()
                .trunks
                .get(d.trunk)
                .map_or_else(|| "trunk".to_string(), |t| t.name.clone());
            let caller_id = planner.caller_id_number(&d).map(str::to_string);
            match cl
                .begin_attempt(&h.lease, &call_id, &channel, caller_id.as_deref(), now)
                .await?
            {
                Ok(attempt) => {
                    // The shared CPS grid's slot: at most a second ahead.
                    let wait = (attempt.at - opts.clock.now()).to_std().unwrap_or_default();
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    let at = attempt.at;
                    let customer = h.customer.clone();
                    h.attempt = Some(attempt);
                    live += 1;
                    summary.max_live = summary.max_live.max(live);
                    summary.attempts += 1;
                    start_call(
                        &ep,
                        &store,
                        &planner,
                        &opts,
                        &experiments,
                        &d,
                        customer,
                        call_id,
                        at,
                        None,
                        done_tx.clone(),
                    )
                    .await?;
                }
                Err(refusal) => {
                    *report
                        .refused
                        .entry(refusal.label().to_string())
                        .or_default() += 1;
                    match refusal {
                        waihu_cluster::Refusal::ChannelsFull
                        | waihu_cluster::Refusal::Paced { .. }
                        | waihu_cluster::Refusal::NotStarted(_) => {
                            // The lease is still ours; the planner gets it back as new.
                            gate_closed = true;
                            readd(&mut planner, &mut held, &waiting, d.contact);
                        }
                        _ => {
                            // The gate re-queued or finished the contact: let it go.
                            planner.release(d.contact);
                            held.remove(&d.contact);
                        }
                    }
                }
            }
        }
        // Hand back what will not be dialled soon; finish what the planner finished.
        let mut gone = Vec::new();
        for (r, h) in &held {
            if h.attempt.is_some() {
                continue;
            }
            match planner.status(*r, now) {
                Some(ContactStatus::Done) | None => {
                    report.finished_undialled += 1;
                    cl.finish_contact(&h.lease, "not_dialled").await?;
                    gone.push(*r);
                }
                Some(ContactStatus::Waiting(at) | ContactStatus::Callback(at))
                    if at > now + KEEP_WITHIN =>
                {
                    report.handed_back += 1;
                    cl.release(&h.lease, at).await?;
                    gone.push(*r);
                }
                _ => {}
            }
        }
        for r in gone {
            planner.release(r);
            held.remove(&r);
        }
        if held.is_empty() && live == 0 {
            cluster_pending = cl.pending(spec.id).await?;
            if cluster_pending == 0 {
                summary.stopped_by = StopReason::EveryContactFinished;
                break;
            }
        }
    }
    progress(
        &summary,
        cluster_pending.min(usize::MAX as u64) as usize,
        live,
    );
    if summary.stopped_by != StopReason::NodeLost {
        cl.leave(opts.clock.now()).await?;
    }
    if summary.stopped_by == StopReason::EveryContactFinished {
        let now = opts.clock.now();
        if cl.campaign_state(spec.id).await?.as_deref() == Some("started") {
            cl.set_campaign_state(spec.id, "finished", &format!("node:{}", cl.node()), now)
                .await?;
        }
    }
    Ok((summary, report))
}

/// What one heartbeat learned.
struct Beat {
    status: NodeStatus,
    /// Nodes this heartbeat declared lost.
    reaped: Vec<String>,
    /// Contacts of the campaign still pending over all nodes.
    pending: u64,
}

/// Aborts a helper task (the heartbeat, the control listener) when the run ends, however it
/// ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A dial the shared gate put off (channels, pacing, not started): the planner forgets the
/// dial and gets the contact back, ready, with the attempts it had.
fn readd(
    planner: &mut Planner,
    held: &mut HashMap<ContactRef, Held>,
    waiting: &HashMap<CustomerId, (Customer, waihu_campaign::ContactInput)>,
    r: ContactRef,
) {
    planner.release(r);
    let Some(h) = held.remove(&r) else { return };
    let Some((_, ci)) = waiting.get(&h.lease.customer) else {
        return;
    };
    if let Ok(n) = planner.add_contact(ci.clone()) {
        planner.set_prior_attempts(n, h.lease.attempts);
        if let Some(at) = h.lease.callback {
            planner.set_callback(n, at);
        }
        held.insert(n, h);
    }
}

/// The campaign's shared limits from its trunks: their channels and CPS summed, or the
/// given defaults for a campaign without trunks.
pub fn shared_limits(campaign: &waihu_campaign::Campaign, channels: u32, cps: f64) -> (u32, f64) {
    if campaign.trunks.is_empty() {
        return (channels, cps);
    }
    let ch: u32 = campaign.trunks.iter().map(|t| t.channels).sum();
    let c: f64 = campaign.trunks.iter().map(|t| t.cps).sum();
    (ch.max(1), if c > 0.0 { c } else { cps })
}
