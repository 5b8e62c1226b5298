//! A campaign rehearsed against virtual callees: the callees start on
//! loopback on the campaign's clock (so they answer by their local hour on
//! it), the campaign runs through the product's own lifecycle
//! ([`waihu_dialer::lifecycle::run_campaign`]) with the trunk pointed at them,
//! and the stored outcomes are scored against the callees' truth. What
//! `waihu demo` and `waihu bench voice` run.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use waihu_bot::{Kit, ScriptKit};
use waihu_core::{CallOutcome, CampaignId};
use waihu_dialer::lifecycle::{run_campaign, BoxError, CampaignSetup, LifecycleError};
use waihu_dialer::{CampaignClock, Summary};
use waihu_speech::Synthesizer;
use waihu_store::Store;

use crate::{score, Population, Score, SimError, SimHandle, SimOptions, SimServer};

/// The callees of a rehearsal.
pub struct Callees {
    pub population: Population,
    /// Their voice (see [`crate::callee_synthesizer`]).
    pub synth: Synthesizer,
    /// Their options; the clock is replaced by the campaign's.
    pub opts: SimOptions,
}

/// What a rehearsal did.
pub struct Rehearsed {
    pub campaign: CampaignId,
    pub summary: Summary,
    pub score: Score,
}

/// Starts `callees` on loopback with the campaign's clock as theirs.
pub async fn start_callees(
    callees: Callees,
    clock: &Arc<CampaignClock>,
) -> Result<SimHandle, SimError> {
    let mut opts = callees.opts;
    let clock = clock.clone();
    opts.clock = Arc::new(move || clock.now());
    SimServer::start_with(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        callees.population,
        callees.synth,
        opts,
    )
    .await
}

/// Runs the campaign of `setup` against the callees of `sim` (started by
/// [`start_callees`] on `setup.clock`; `setup.trunk` is their address) and
/// scores every attempt. The callees stop before this returns.
pub async fn rehearse(
    store: &Store,
    setup: CampaignSetup,
    sim: SimHandle,
    make_kit: impl FnOnce(&ScriptKit) -> Result<Kit, BoxError>,
    shutdown: watch::Receiver<bool>,
) -> Result<Rehearsed, LifecycleError> {
    let run = run_campaign(store, setup, make_kit, shutdown).await;
    let (campaign, summary) = match run {
        Ok(r) => r,
        Err(e) => {
            sim.shutdown().await;
            return Err(e);
        }
    };
    let attempts: Vec<(String, CallOutcome, Option<String>)> = summary
        .calls
        .iter()
        .map(|c| (c.phone.clone(), c.outcome, c.business.clone()))
        .collect();
    let logs = sim
        .wait_for_logs(attempts.len(), Duration::from_secs(5))
        .await;
    let score = score(&attempts, &logs);
    sim.shutdown().await;
    Ok(Rehearsed {
        campaign,
        summary,
        score,
    })
}
