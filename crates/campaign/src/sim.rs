//! Campaign simulator in virtual time: synthetic customers whose answer
//! behaviour varies by hour of week, segment and history, driven through the
//! real [`Planner`]. Every attempt is emitted as the same events the dialer
//! would write, so the independent compliance checker can audit the run.
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use waihu_core::{CallOutcome, CampaignId, CustomerId, Event, EventKind, PhoneIndex};

use rand09::SeedableRng as _;
use waihu_learn::{Arm, Bandit};

use crate::config::{Campaign, PacingMode, Policy};
pub use crate::message_gate::MessageRules;
use crate::message_gate::{decide, Decision};
use crate::pacing::PredictivePacer;
use crate::planner::{Action, ContactInput, ContactRef, Planner, Report};

/// Conversion multiplier of the three opening variants, by segment position:
/// the truth the variant bandit has to find (documented in docs/campaign.md).
pub const VARIANT_EFFECT: [[f64; 3]; 4] = [
    [1.0, 1.25, 0.85],
    [1.0, 0.9, 1.2],
    [1.0, 1.1, 1.0],
    [1.0, 0.8, 1.15],
];
/// A message converts (or not) this long after it is sent.
const MESSAGE_EFFECT_MS: i64 = 2 * 3600 * 1000;

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub customers: usize,
    pub days: u32,
    pub seed: u64,
    pub policy: Policy,
    /// Human agents: switches to predictive pacing with the campaign's target.
    pub agents: Option<u32>,
    /// First day (campaign time zone). `None`: the campaign's first active day.
    pub start: Option<NaiveDate>,
    /// Learned policy: explain this many customers at the end (ids 1..=N).
    pub explain: usize,
    /// The campaign file's `messages:` rules ([`MessageRules::from_campaign_yaml`]);
    /// `None`: the defaults. Every simulated message passes this gate, as live ones do.
    pub messages: Option<MessageRules>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            customers: 10_000,
            days: 7,
            seed: 1,
            policy: Policy::BestTime,
            agents: None,
            start: None,
            explain: 0,
            messages: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SimReport {
    pub policy: String,
    pub customers: usize,
    pub days: u32,
    pub channels: u32,
    pub attempts: u64,
    /// Answered by a person (abandoned calls excluded).
    pub connects: u64,
    /// Distinct customers connected at least once.
    pub reached: u64,
    /// reached / customers.
    pub contact_rate: f64,
    pub connects_per_attempt: f64,
    pub attempts_per_connect: f64,
    /// Attempts that hit a non-existent number.
    pub invalid_attempts: u64,
    /// Attempts that reached nobody (everything but a connect).
    pub wasted_attempts: u64,
    pub callbacks_requested: u64,
    pub callback_dials: u64,
    pub dnc_added: u64,
    pub messages_sent: u64,
    /// Messages the gate held for later (quiet hours, caps) and dropped (held too long).
    pub messages_deferred: u64,
    pub messages_suppressed: u64,
    pub abandoned: u64,
    pub abandon_rate: f64,
    pub events: u64,
    pub pending_at_end: usize,
    /// Tasks completed: customers converted, by a call or by a message.
    pub tasks_completed: u64,
    pub tasks_by_call: u64,
    pub tasks_by_message: u64,
    /// Attempts that reached nobody (= `wasted_attempts`, the name the comparison uses).
    pub attempts_reaching_nobody: u64,
    /// Conversions per connect.
    pub conversion_per_connect: f64,
    /// Channel-hours of open calling window (campaign zone) over the run.
    pub line_hours: f64,
    pub tasks_per_line_hour: f64,
    /// Learned policy: messages sent first instead of a call, contacts skipped.
    pub message_first: u64,
    pub skipped: u64,
    /// Opening variants: how they were split (`thompson` or `fixed`), calls per
    /// variant, and expected conversions lost against the best variant of each
    /// segment in hindsight (regret).
    pub variant_split: String,
    pub variant_calls: Vec<u64>,
    pub variant_regret: f64,
    /// Learned policy: why the first `explain` customers were ranked and
    /// handled as they were (probabilities, expected values, top features).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub explanations: Vec<CustomerExplanation>,
    /// Wall time of the run, filled in by the harness that timed it (0 otherwise: the
    /// simulator reads no clock).
    pub wall_secs: f64,
    /// Time inside the planner's calls, likewise measured by the harness through a
    /// [`PlannerTimer`].
    pub planner_secs: f64,
    pub decisions: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CustomerExplanation {
    pub customer: i64,
    /// The features the simulator gave the planner.
    pub features: Vec<String>,
    #[serde(flatten)]
    pub explanation: crate::learned::Explanation,
}

/// Hidden behaviour of a synthetic customer.
#[derive(Debug, Clone, Copy)]
struct Persona {
    kind: u8,
    base: f32,
    p_off: f32,
    voicemail: bool,
    invalid: bool,
    unanswered: u8,
    reached: bool,
    /// P(task completed | connected, variant effect 1).
    conv: f32,
    /// P(task completed | a message).
    sms: f32,
    converted: bool,
}

/// Answer multiplier by persona kind, weekend, local hour.
fn hour_factor(kind: u8, weekend: bool, hour: u32) -> f64 {
    match (kind, weekend) {
        // Office worker: hard to reach in office hours, good in the evening.
        (0, false) => match hour {
            0..=8 => 0.2,
            9..=11 => 0.35,
            12..=13 => 0.9,
            14..=17 => 0.4,
            18..=20 => 1.4,
            _ => 0.6,
        },
        (0, true) => 1.1,
        // At home (retired, carer): mornings best, evenings worse.
        (1, _) => match hour {
            0..=8 => 0.5,
            9..=11 => 1.4,
            12..=13 => 0.6,
            14..=17 => 1.0,
            _ => 0.5,
        },
        // Shift worker / student: afternoons and evenings.
        (_, false) => match hour {
            0..=11 => 0.4,
            12..=16 => 1.1,
            _ => 1.2,
        },
        (_, true) => 0.8,
    }
}

/// Persona mix (office, home, shift) by segment position: segments differ,
/// so a per-segment hour-of-week model has something to learn.
fn persona_mix(segment: usize) -> [f64; 3] {
    match segment % 4 {
        0 => [0.65, 0.15, 0.20],
        1 => [0.35, 0.15, 0.50],
        2 => [0.25, 0.60, 0.15],
        _ => [0.35, 0.40, 0.25],
    }
}

fn phone_index(seed: u64, phone: u64) -> PhoneIndex {
    // splitmix64: a stand-in for the HMAC blind index, stable per number.
    let mut z = phone ^ seed.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    PhoneIndex(format!("{z:016x}"))
}

#[derive(Debug, Clone, Copy)]
struct Call {
    contact: ContactRef,
    cust: u32,
    outcome: CallOutcome,
    answer_at: i64,
    talk_ms: i64,
    id: u64,
    callback_at: Option<i64>,
    dnc: bool,
    abandoned: bool,
    started: i64,
    segment: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SimEv {
    /// Ringing ends: answered (needs an agent in predictive mode) or failed.
    RingEnd(u32),
    /// Call over.
    End(u32),
    /// A message to this customer worked, or not.
    MessageResult(u32),
    /// A message the gate deferred (index into the deferred list) comes up again.
    MessageDue(u32),
}

/// A message the planner asked for, through the message gate.
struct Outbox {
    rules: MessageRules,
    campaign: CampaignId,
    seed: u64,
    /// Per customer: when messages went.
    sent: std::collections::HashMap<u32, Vec<DateTime<Utc>>>,
    /// Deferred: (customer, channel, template, queued at).
    deferred: Vec<(u32, &'static str, String, i64)>,
    next_id: i64,
}

impl Outbox {
    /// Decides a message queued at `created` (ms) now at `at` (ms): events to log and
    /// queue entries (its result, or its next try).
    #[allow(clippy::too_many_arguments)]
    fn offer(
        &mut self,
        at: i64,
        created: i64,
        cust: u32,
        phone: u64,
        tz: Tz,
        channel: &'static str,
        template: String,
        report: &mut SimReport,
    ) -> (Vec<Event>, Option<(i64, SimEv)>) {
        let now = at_ms(at);
        let earlier = self.sent.get(&cust).map(Vec::as_slice).unwrap_or(&[]);
        match decide(&self.rules, tz, now, at_ms(created), earlier) {
            Decision::Send => {
                self.sent.entry(cust).or_default().push(now);
                self.next_id += 1;
                report.messages_sent += 1;
                let customer = Some(CustomerId(cust as i64 + 1));
                let base = |kind| Event {
                    at: now,
                    customer,
                    campaign: Some(self.campaign),
                    call: None,
                    kind,
                };
                let events = vec![
                    base(EventKind::MessageSubmitted {
                        message: self.next_id,
                        phone: phone_index(self.seed, phone),
                        tz: tz.name().into(),
                        local_time: now.with_timezone(&tz).to_rfc3339(),
                        channel: channel.into(),
                        template: template.clone(),
                    }),
                    base(EventKind::MessageSent {
                        channel: channel.into(),
                        template,
                    }),
                ];
                (
                    events,
                    Some((at + MESSAGE_EFFECT_MS, SimEv::MessageResult(cust))),
                )
            }
            Decision::Defer { until, .. } => {
                report.messages_deferred += 1;
                self.deferred.push((cust, channel, template, created));
                let i = (self.deferred.len() - 1) as u32;
                (Vec::new(), Some((ms(until), SimEv::MessageDue(i))))
            }
            Decision::Suppress { .. } => {
                report.messages_suppressed += 1;
                (Vec::new(), None)
            }
        }
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at_ms(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Rewrite a campaign file for a simulated scale: trunks resized to
/// `channels` in total (CPS in proportion) and caller-ID daily caps scaled by
/// the same factor, so the scenario stays internally consistent. The result
/// is YAML again, so the planner and the independent checker each parse the
/// very same scenario text with their own parser.
pub fn scale_scenario(text: &str, channels: u32) -> Result<String, crate::config::ConfigError> {
    // Validate first for the good error messages.
    Campaign::from_yaml(text)?;
    let mut f: crate::config::CampaignFile =
        serde_norway::from_str(text).map_err(|e| crate::config::ConfigError {
            issues: vec![crate::config::ConfigIssue {
                path: "(document)".into(),
                line: None,
                column: None,
                message: e.to_string(),
            }],
        })?;
    if f.trunks.is_empty() {
        f.trunks.push(crate::config::TrunkFile {
            name: "default".into(),
            channels: 100,
            cps: 10.0,
            ..Default::default()
        });
    }
    let base: u32 = f.trunks.iter().map(|t| t.channels).sum();
    let scale = channels as f64 / base.max(1) as f64;
    let n = f.trunks.len() as u32;
    for (i, t) in f.trunks.iter_mut().enumerate() {
        t.channels = (channels / n + u32::from((i as u32) < channels % n)).max(1);
        t.cps = (t.cps * scale).max(1.0);
    }
    if let Some(c) = f.caller_ids.as_mut() {
        for p in c.pool.iter_mut() {
            p.daily_cap = p
                .daily_cap
                .map(|cap| ((cap as f64) * scale.max(1.0)).ceil() as u32);
        }
    }
    serde_norway::to_string(&f).map_err(|e| crate::config::ConfigError {
        issues: vec![crate::config::ConfigIssue {
            path: "(document)".into(),
            line: None,
            column: None,
            message: e.to_string(),
        }],
    })
}

/// Told when the simulator enters and leaves the planner, so a harness can time the
/// planner's share of a run (`waihu campaign simulate` does, with a wall clock). The
/// simulator itself never reads a clock.
pub trait PlannerTimer {
    /// Just before a planner call.
    fn start(&mut self);
    /// Just after it.
    fn stop(&mut self);
}

/// No timing.
impl PlannerTimer for () {
    fn start(&mut self) {}
    fn stop(&mut self) {}
}

/// Run a simulation. Every event goes to `sink` in time order. The report's
/// `wall_secs` and `planner_secs` stay 0: see [`simulate_with`].
pub fn simulate(campaign: &Campaign, cfg: &SimConfig, sink: &mut dyn FnMut(&Event)) -> SimReport {
    simulate_with(campaign, cfg, sink, &mut ())
}

/// [`simulate`], telling `timer` about every planner call.
pub fn simulate_with(
    campaign: &Campaign,
    cfg: &SimConfig,
    sink: &mut dyn FnMut(&Event),
    timer: &mut dyn PlannerTimer,
) -> SimReport {
    let mut campaign = campaign.clone();
    campaign.policy = cfg.policy;
    let channels: u32 = campaign.trunks.iter().map(|t| t.channels).sum();
    let predictive = cfg.agents.is_some();
    let target = match campaign.pacing {
        PacingMode::Predictive {
            target_abandon_rate,
        } => target_abandon_rate,
        PacingMode::Progressive => 0.03,
    };
    let camp_id: CampaignId = campaign.id;
    let tz_camp = campaign.timezone;
    let start_date = cfg
        .start
        .or(campaign.active.map(|a| a.0))
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(2026, 11, 2).unwrap_or_default());
    let start = start_date
        .and_hms_opt(0, 0, 0)
        .and_then(|n| n.and_local_timezone(tz_camp).earliest())
        .map(|t| t.with_timezone(&Utc))
        // Midnight skipped by a DST change: start at midnight UTC (still no clock read).
        .unwrap_or_else(|| start_date.and_time(chrono::NaiveTime::MIN).and_utc());
    let end = start + Duration::days(cfg.days as i64);

    let mut rng = SmallRng::seed_from_u64(cfg.seed);
    // A second stream for what the first wave of the simulator did not model
    // (attributes, conversions, variants), so the answer behaviour drawn from
    // `rng` stays what it was for a given seed.
    let mut rng2 = SmallRng::seed_from_u64(cfg.seed ^ 0x6a09_e667_f3bc_c908);
    let mut rng09 = rand09::rngs::StdRng::seed_from_u64(cfg.seed);
    let mut refs: Vec<Option<ContactRef>> = Vec::with_capacity(cfg.customers);
    let mut shown: Vec<Vec<String>> = Vec::new();
    let mut planner = Planner::new(campaign.clone());
    planner.reserve(cfg.customers);
    let segs = campaign.segments.len();
    let seg_weights: Vec<f64> = (0..segs).map(|i| [0.1, 0.3, 0.2, 0.4][i % 4]).collect();
    let seg_total: f64 = seg_weights.iter().sum();
    const CN_REGIONS: [&str; 5] = ["北京", "上海", "广州", "深圳", "成都"];
    let mut personas = Vec::with_capacity(cfg.customers);
    let mut phones = Vec::with_capacity(cfg.customers);
    let mut tzs: Vec<Tz> = Vec::with_capacity(cfg.customers);
    let mut report = SimReport {
        policy: match cfg.policy {
            Policy::BestTime => "best-time".into(),
            Policy::Fifo => "fifo".into(),
            Policy::Learned => "learned".into(),
        },
        variant_split: if cfg.policy == Policy::Learned {
            "thompson".into()
        } else {
            "fixed".into()
        },
        variant_calls: vec![0; 3],
        customers: cfg.customers,
        days: cfg.days,
        channels: cfg.agents.unwrap_or(channels),
        ..Default::default()
    };
    let mut emit = |e: Event, report: &mut SimReport| {
        report.events += 1;
        sink(&e);
    };
    for i in 0..cfg.customers {
        let mut x = rng.gen::<f64>() * seg_total;
        let mut seg = 0;
        while seg + 1 < segs && x >= seg_weights[seg] {
            x -= seg_weights[seg];
            seg += 1;
        }
        let mix = persona_mix(seg);
        let r = rng.gen::<f64>();
        let kind = if r < mix[0] {
            0
        } else if r < mix[0] + mix[1] {
            1
        } else {
            2
        };
        let zone = rng.gen_range(0..100);
        let (tz, phone, region): (Tz, u64, Option<String>) = if zone < 3 {
            (
                chrono_tz::America::New_York,
                12_120_000_000 + i as u64 % 10_000_000,
                Some("NY".into()),
            )
        } else if zone < 5 {
            (chrono_tz::Europe::London, 442_000_000_000 + i as u64, None)
        } else if i % 97 == 5 {
            // A virtual-operator range some campaigns exclude wholesale.
            (
                chrono_tz::Asia::Shanghai,
                8_617_000_000_000 + i as u64,
                Some(CN_REGIONS[i % 5].into()),
            )
        } else {
            (
                chrono_tz::Asia::Shanghai,
                8_613_900_000_000 + i as u64,
                Some(CN_REGIONS[i % 5].into()),
            )
        };
        let mut persona = Persona {
            kind,
            base: rng.gen_range(0.12..0.7f32) * if seg % 4 == 0 { 1.1 } else { 1.0 },
            p_off: if rng.gen_bool(0.08) { 0.6 } else { 0.03 },
            voicemail: rng.gen_bool(0.15),
            invalid: rng.gen_bool(0.04),
            unanswered: 0,
            reached: false,
            conv: 0.0,
            sms: 0.0,
            converted: false,
        };
        // What the CRM shows about the customer, and the behaviour behind it.
        const OCCUPATIONS: [&str; 3] = ["office", "at_home", "shift"];
        let occupation = if rng2.gen_bool(0.8) {
            OCCUPATIONS[kind as usize]
        } else {
            OCCUPATIONS[rng2.gen_range(0..3)]
        };
        let (tier, conv) = match rng2.gen_range(0..10) {
            0..=1 => ("gold", 0.55),
            2..=4 => ("silver", 0.30),
            _ => ("basic", 0.10),
        };
        persona.conv = (conv * rng2.gen_range(0.7..1.3f32)).min(0.95);
        let (age, sms) = match rng2.gen_range(0..20) {
            0..=6 => ("young", 0.25),
            7..=14 => ("middle", 0.10),
            _ => ("senior", 0.03),
        };
        let has_app = rng2.gen_bool(0.4);
        persona.sms =
            (sms * if has_app { 1.5 } else { 1.0 } * rng2.gen_range(0.6..1.4f32)).min(0.6);
        let prepaid = rng2.gen_bool(0.2);
        // Prepaid lines are the ones often switched off (35% vs 2%).
        if rng2.gen_bool(if prepaid { 0.35 } else { 0.02 }) {
            persona.p_off = 0.6;
        }
        let features = vec![
            format!("occupation={occupation}"),
            format!("tier={tier}"),
            format!("age={age}"),
            format!("line={}", if prepaid { "prepaid" } else { "postpaid" }),
        ];
        if i < cfg.explain {
            shown.push(features.clone());
        }
        // Calls from earlier campaigns, drawn from the same behaviour.
        let mut history = Vec::new();
        if rng.gen_bool(0.6) && !persona.invalid {
            for _ in 0..rng.gen_range(1..=4) {
                let hour: u32 = [9, 10, 11, 14, 15, 16, 17, 18, 19][rng.gen_range(0..9)];
                let weekend = rng.gen_bool(2.0 / 7.0);
                let p = (persona.base as f64 * hour_factor(kind, weekend, hour)).min(0.95);
                history.push(crate::planner::PastCall {
                    hour: hour as u8,
                    answered: rng.gen_bool(p),
                });
            }
        }
        let input = ContactInput {
            customer: CustomerId(i as i64 + 1),
            phone: format!("+{phone}"),
            tz,
            segment: campaign.segments[seg].name.clone(),
            region,
            has_app: {
                // Drawn from the first stream as before; the second stream's `has_app` wins.
                let _ = rng.gen_bool(0.4);
                has_app
            },
            channel_pref: crate::ChannelPref::Any,
            consent: !campaign.consent_required || rng.gen_bool(0.9),
            recency_days: Some(rng.gen_range(1..365)),
            history,
            features,
        };
        let added = planner.add_contact(input);
        refs.push(added.as_ref().ok().copied());
        if added.is_err() {
            // Duplicate synthetic number (US range wraps): skip the customer.
            personas.push(Persona {
                invalid: true,
                reached: true,
                ..persona
            });
            phones.push(phone);
            tzs.push(tz);
            continue;
        }
        personas.push(persona);
        phones.push(phone);
        tzs.push(tz);
        if rng.gen_bool(0.01) {
            // Already on the global do-not-call list before the campaign.
            planner.add_dnc(&format!("+{phone}"));
            emit(
                Event {
                    at: start,
                    customer: Some(CustomerId(i as i64 + 1)),
                    campaign: None,
                    call: None,
                    kind: EventKind::DncAdded {
                        phone: phone_index(cfg.seed, phone),
                        scope: "global".into(),
                        reason: "imported".into(),
                    },
                },
                &mut report,
            );
        }
    }
    let mut pacer = PredictivePacer::new(target, 0.35);
    let agents = cfg.agents.unwrap_or(0) as usize;
    let mut agents_busy = 0usize;
    let mut ringing = 0usize;
    let mut calls: Vec<Call> = Vec::new();
    let mut free_slots: Vec<u32> = Vec::new();
    let mut queue: BinaryHeap<Reverse<(i64, SimEv)>> = BinaryHeap::new();
    let mut call_seq = 0u64;
    let segs_n = campaign.segments.len();
    let mut variant_arms: Vec<Vec<Arm>> = vec![vec![Arm::default(); 3]; segs_n];
    let mut bandits: Vec<Bandit> = (0..segs_n)
        .map(|_| Bandit::new(3, waihu_learn::Policy::default()))
        .collect();
    let mut since_restore = vec![0u32; segs_n];
    let mut outbox = Outbox {
        rules: cfg.messages.clone().unwrap_or_default(),
        campaign: camp_id,
        seed: cfg.seed,
        sent: std::collections::HashMap::new(),
        deferred: Vec::new(),
        next_id: 0,
    };
    let mut now = start;
    let step = Duration::seconds(1);
    while now < end {
        let t = ms(now);
        // Calls that ring out or end by now.
        while let Some(&Reverse((when, ev))) = queue.peek() {
            if when > t {
                break;
            }
            queue.pop();
            match ev {
                SimEv::RingEnd(ci) => {
                    ringing = ringing.saturating_sub(1);
                    let c = &mut calls[ci as usize];
                    if c.outcome == CallOutcome::Answered {
                        if predictive {
                            pacer.on_attempt(true);
                            if agents_busy < agents {
                                agents_busy += 1;
                                pacer.on_answered(false);
                                queue.push(Reverse((when + c.talk_ms, SimEv::End(ci))));
                            } else {
                                pacer.on_answered(true);
                                c.abandoned = true;
                                report.abandoned += 1;
                                emit(
                                    Event {
                                        at: at_ms(when),
                                        customer: Some(CustomerId(c.cust as i64 + 1)),
                                        campaign: Some(camp_id),
                                        call: Some(waihu_core::CallId(format!("s{}", c.id))),
                                        kind: EventKind::CallAbandoned {
                                            phone: phone_index(cfg.seed, phones[c.cust as usize]),
                                        },
                                    },
                                    &mut report,
                                );
                                queue.push(Reverse((when + 2000, SimEv::End(ci))));
                            }
                        } else {
                            queue.push(Reverse((when + c.talk_ms, SimEv::End(ci))));
                        }
                    } else {
                        if predictive {
                            pacer.on_attempt(false);
                        }
                        queue.push(Reverse((when, SimEv::End(ci))));
                    }
                }
                SimEv::MessageDue(i) => {
                    let (cust, channel, template, created) =
                        std::mem::take(&mut outbox.deferred[i as usize]);
                    if personas[cust as usize].converted {
                        continue;
                    }
                    let (evs, next) = outbox.offer(
                        when,
                        created,
                        cust,
                        phones[cust as usize],
                        tzs[cust as usize],
                        channel,
                        template,
                        &mut report,
                    );
                    queue.extend(next.map(Reverse));
                    for ev in evs {
                        emit(ev, &mut report);
                    }
                }
                SimEv::MessageResult(cust) => {
                    let p = &mut personas[cust as usize];
                    if p.converted {
                        continue;
                    }
                    let converted = rng2.gen::<f32>() < p.sms;
                    if converted {
                        p.converted = true;
                        report.tasks_by_message += 1;
                    }
                    if let Some(c) = refs[cust as usize] {
                        timer.start();
                        planner.on_message_result(c, converted);
                        timer.stop();
                    }
                }
                SimEv::End(ci) => {
                    let c = calls[ci as usize];
                    free_slots.push(ci);
                    let connected = c.outcome == CallOutcome::Answered && !c.abandoned;
                    if c.outcome == CallOutcome::Answered && !c.abandoned && predictive {
                        agents_busy = agents_busy.saturating_sub(1);
                    }
                    let cust = Some(CustomerId(c.cust as i64 + 1));
                    let call = Some(waihu_core::CallId(format!("s{}", c.id)));
                    let sip = match c.outcome {
                        CallOutcome::Answered | CallOutcome::Voicemail => 200,
                        CallOutcome::Busy => 486,
                        CallOutcome::NoAnswer => 480,
                        CallOutcome::InvalidNumber => 404,
                        CallOutcome::PoweredOff => 503,
                        CallOutcome::Rejected => 603,
                        _ => 500,
                    };
                    emit(
                        Event {
                            at: at_ms(when),
                            customer: cust,
                            campaign: Some(camp_id),
                            call: call.clone(),
                            kind: EventKind::AttemptEnded {
                                outcome: c.outcome,
                                sip_status: Some(sip),
                                duration_s: (when - c.started) as f64 / 1000.0,
                            },
                        },
                        &mut report,
                    );
                    let mut converted = false;
                    if connected {
                        // The opening variant: Thompson sampling per segment
                        // (learned policy) or a fixed equal split.
                        let seg = c.segment as usize;
                        let effect = VARIANT_EFFECT[seg % 4];
                        let v = if cfg.policy == Policy::Learned {
                            bandits[seg].pick(&mut rng09).0
                        } else {
                            rng2.gen_range(0..3)
                        };
                        report.variant_calls[v] += 1;
                        let best = effect.iter().cloned().fold(0.0, f64::max);
                        let p = &personas[c.cust as usize];
                        report.variant_regret += p.conv as f64 * (best - effect[v]);
                        converted = !p.converted
                            && rng2.gen::<f64>() < (p.conv as f64 * effect[v]).min(0.95);
                        variant_arms[seg][v].trials += 1;
                        variant_arms[seg][v].successes += u64::from(converted);
                        since_restore[seg] += 1;
                        if cfg.policy == Policy::Learned && since_restore[seg] >= 500 {
                            // Rewards reach the bandit in batches, as they would
                            // from calls still in flight.
                            since_restore[seg] = 0;
                            bandits[seg] = Bandit::restore(
                                variant_arms[seg].clone(),
                                waihu_learn::Policy::default(),
                                &mut rng09,
                            );
                        }
                        if converted {
                            report.tasks_by_call += 1;
                            personas[c.cust as usize].converted = true;
                        }
                    }
                    let p = &mut personas[c.cust as usize];
                    if connected {
                        report.connects += 1;
                        if !p.reached {
                            p.reached = true;
                            report.reached += 1;
                        }
                        p.unanswered = 0;
                    } else {
                        p.unanswered = p.unanswered.saturating_add(1);
                    }
                    let rep = Report {
                        outcome: c.outcome,
                        callback_at: if connected {
                            c.callback_at.map(at_ms)
                        } else {
                            None
                        },
                        do_not_call: connected && c.dnc,
                        abandoned: c.abandoned,
                        converted,
                    };
                    if let Some(cb) = rep.callback_at {
                        report.callbacks_requested += 1;
                        emit(
                            Event {
                                at: at_ms(when),
                                customer: cust,
                                campaign: Some(camp_id),
                                call: call.clone(),
                                kind: EventKind::CallbackRequested { when: cb },
                            },
                            &mut report,
                        );
                    }
                    timer.start();
                    let actions = planner.on_outcome(at_ms(when), c.contact, rep);
                    timer.stop();
                    for a in actions {
                        match a {
                            Action::AddDnc { customer } => {
                                report.dnc_added += 1;
                                emit(
                                    Event {
                                        at: at_ms(when),
                                        customer: Some(customer),
                                        campaign: Some(camp_id),
                                        call: call.clone(),
                                        kind: EventKind::DncAdded {
                                            phone: phone_index(cfg.seed, phones[c.cust as usize]),
                                            scope: "global".into(),
                                            reason: "callee asked / 客户要求".into(),
                                        },
                                    },
                                    &mut report,
                                );
                            }
                            Action::SendMessage {
                                customer,
                                channel,
                                template,
                            } => {
                                let cust = (customer.0 - 1) as u32;
                                let (evs, next) = outbox.offer(
                                    when,
                                    when,
                                    cust,
                                    phones[cust as usize],
                                    tzs[cust as usize],
                                    channel,
                                    template,
                                    &mut report,
                                );
                                queue.extend(next.map(Reverse));
                                for ev in evs {
                                    emit(ev, &mut report);
                                }
                            }
                            Action::CallbackScheduled { .. } | Action::Finished { .. } => {}
                        }
                    }
                }
            }
        }
        let free = if predictive {
            pacer.lines_to_dial(agents.saturating_sub(agents_busy), ringing)
        } else {
            (channels as usize).saturating_sub(planner.in_flight() as usize)
        };
        timer.start();
        let dials = planner.next_dials(now, free);
        timer.stop();
        report.decisions += dials.len() as u64;
        for a in planner.take_actions() {
            if let Action::SendMessage {
                customer,
                channel,
                template,
            } = a
            {
                let cust = (customer.0 - 1) as u32;
                let (evs, next) = outbox.offer(
                    t,
                    t,
                    cust,
                    phones[cust as usize],
                    tzs[cust as usize],
                    channel,
                    template,
                    &mut report,
                );
                queue.extend(next.map(Reverse));
                for ev in evs {
                    emit(ev, &mut report);
                }
            }
        }
        for d in dials {
            let ci = d.contact.0;
            let cust = (d.customer.0 - 1) as u32;
            let p = personas[cust as usize];
            let local = d.local_time;
            let weekend = local.weekday().num_days_from_monday() >= 5;
            let p_ans = (p.base as f64
                * hour_factor(p.kind, weekend, local.hour())
                * 0.88f64.powi(p.unanswered as i32))
            .min(0.95);
            let (outcome, ring_ms, talk_ms) = if p.invalid {
                (CallOutcome::InvalidNumber, rng.gen_range(1000..3000), 0)
            } else if rng.gen::<f32>() < 0.005 {
                (CallOutcome::Failed, 2000, 0)
            } else if rng.gen::<f32>() < p.p_off {
                (CallOutcome::PoweredOff, rng.gen_range(5000..9000), 0)
            } else if rng.gen::<f64>() < p_ans {
                (
                    CallOutcome::Answered,
                    rng.gen_range(3000..15000),
                    rng.gen_range(40_000..180_000),
                )
            } else if rng.gen::<f32>() < 0.12 {
                (CallOutcome::Busy, rng.gen_range(2000..5000), 0)
            } else if p.voicemail && rng.gen_bool(0.5) {
                (CallOutcome::Voicemail, 20_000, 25_000)
            } else {
                (CallOutcome::NoAnswer, 30_000, 0)
            };
            if p.invalid {
                report.invalid_attempts += 1;
            }
            let mut callback_at = None;
            let mut dnc = false;
            if outcome == CallOutcome::Answered {
                let r = rng.gen::<f64>();
                if r < 0.06 {
                    // "Call me at HH:00 tomorrow" — sometimes at an hour outside the window.
                    let hour = rng.gen_range(8..22);
                    let day = local.date_naive() + Duration::days(1);
                    callback_at = day
                        .and_hms_opt(hour, 0, 0)
                        .and_then(|n| n.and_local_timezone(d.tz).earliest())
                        .map(|t| t.timestamp_millis());
                } else if r < 0.075 {
                    dnc = true;
                }
            }
            call_seq += 1;
            let call = Call {
                contact: d.contact,
                cust,
                outcome,
                answer_at: t + ring_ms,
                talk_ms,
                id: call_seq,
                callback_at,
                dnc,
                abandoned: false,
                started: t,
                segment: d.segment as u16,
            };
            let _ = ci;
            let slot = match free_slots.pop() {
                Some(s) => {
                    calls[s as usize] = call;
                    s
                }
                None => {
                    calls.push(call);
                    (calls.len() - 1) as u32
                }
            };
            ringing += 1;
            queue.push(Reverse((call.answer_at, SimEv::RingEnd(slot))));
            report.attempts += 1;
            emit(
                Event {
                    at: now,
                    customer: Some(d.customer),
                    campaign: Some(camp_id),
                    call: Some(waihu_core::CallId(format!("s{call_seq}"))),
                    kind: EventKind::AttemptStarted {
                        phone: phone_index(cfg.seed, d.phone),
                        tz: d.tz.name().into(),
                        local_time: d.local_time.to_rfc3339(),
                        caller_id: planner.caller_id_number(&d).map(str::to_string),
                        channel: "voice".into(),
                    },
                },
                &mut report,
            );
        }
        // Idle (nothing in flight): jump to the next minute, or to the next
        // message result if sooner (only those can be queued with nothing in flight).
        now = if free > 0 && planner.in_flight() == 0 {
            let next_min = (now.timestamp() / 60 + 1) * 60;
            let next = match queue.peek() {
                Some(&Reverse((w, _))) => next_min.min(w.div_euclid(1000) + 1),
                None => next_min,
            };
            DateTime::from_timestamp(next.max(now.timestamp() + 1), 0).unwrap_or(now + step)
        } else {
            now + step
        };
    }
    report.pending_at_end = planner.pending();
    report.wasted_attempts = report.attempts - report.connects;
    report.contact_rate = report.reached as f64 / cfg.customers.max(1) as f64;
    report.connects_per_attempt = report.connects as f64 / report.attempts.max(1) as f64;
    report.attempts_per_connect = report.attempts as f64 / report.connects.max(1) as f64;
    report.abandon_rate =
        report.abandoned as f64 / (report.abandoned + report.connects).max(1) as f64;
    report.callback_dials = planner.stats().callback_dials;
    report.message_first = planner.stats().message_first;
    report.skipped = planner.stats().skipped;
    report.tasks_completed = report.tasks_by_call + report.tasks_by_message;
    for (i, features) in shown.into_iter().enumerate() {
        if let Some(explanation) = refs[i].and_then(|c| planner.explain(c)) {
            report.explanations.push(CustomerExplanation {
                customer: i as i64 + 1,
                features,
                explanation,
            });
        }
    }
    report.attempts_reaching_nobody = report.wasted_attempts;
    report.conversion_per_connect = report.tasks_by_call as f64 / report.connects.max(1) as f64;
    let mut open_secs = 0u64;
    for d in 0..cfg.days {
        let date = start_date + Duration::days(d as i64);
        if campaign.holidays.contains(&date) {
            continue;
        }
        let wd = date.weekday().num_days_from_monday() as usize;
        open_secs += campaign.windows[wd]
            .iter()
            .map(|w| w.end.saturating_sub(w.start) as u64)
            .sum::<u64>();
    }
    report.line_hours = report.channels as f64 * open_secs as f64 / 3600.0;
    report.tasks_per_line_hour = report.tasks_completed as f64 / report.line_hours.max(1e-9);
    report
}
