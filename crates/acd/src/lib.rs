//! Agents and queues for the human handoff (转人工), without I/O.
//!
//! A call whose script transfers to a queue waits in it ([`Acd::request`]);
//! the runtime then asks [`Acd::next`] what to do and reports what happened
//! ([`Acd::answered`], [`Acd::no_answer`], [`Acd::ended`], [`Acd::abandon`]).
//! Time is an input: `now` is milliseconds on a monotonic clock the runtime
//! chooses (the core never reads a clock), so tests drive hours of agent
//! states in microseconds.
//!
//! Routing: among the agents that have every skill the queue requires (a queue
//! without `skills` requires its own name) and are `available`, the one idle
//! longest is offered the call. An agent who lets it ring out is skipped for
//! that caller while others with the skills remain untried. After a call the
//! agent is in `wrap_up` for the queue's `wrap_up_s`, then available again,
//! idle since the end of the wrap-up. A paused agent is never offered a call.
//! When every agent with the skills is paused the caller is not kept waiting
//! (give up at once: the runtime offers a callback); when they are busy the
//! caller waits up to the queue's `wait_timeout_s`.
//!
//! Reachability is an input too: [`Acd::next_with`] asks the runtime for each
//! candidate's contact at offer time (a registered agent's live binding, else
//! its `uri`). An agent with none — registering, but not registered now — is
//! never offered a call; it keeps its state (`available`, ...) and is
//! *unreachable*. When every skilled agent is paused or unreachable and at
//! least one is unreachable, the caller is not kept waiting either
//! ([`GiveUp::Unregistered`]): a softphone that is offline is like an agent
//! who has logged out.
//!
//! ```
//! use waihu_acd::{Acd, Config, Step};
//! let cfg = Config::from_yaml(
//!     "agents:\n  - {id: li, uri: 'sip:li@127.0.0.1:5062', skills: [zh, after_sales]}\nqueues:\n  - {name: after_sales, skills: [zh]}\n",
//!     "agents.yaml",
//! ).unwrap();
//! let mut acd = Acd::new(cfg, 0);
//! let mut w = acd.request("after_sales", 1_000).unwrap();
//! match acd.next(&mut w, 1_000) {
//!     Step::Offer { agent, ring_ms, .. } => { assert_eq!(agent, "li"); assert_eq!(ring_ms, 15_000) }
//!     other => panic!("{other:?}"),
//! }
//! acd.answered(&w, 4_000);
//! acd.ended("li", 60_000);
//! ```
use serde::Deserialize;

mod config;
pub use config::{
    AgentRegister, AgentSpec, Config, ConfigError, PasswordSource, QueueSpec, RegistrarSpec,
};

/// Milliseconds on the runtime's monotonic clock.
pub type Ms = u64;

/// How long a caller waits between looks at busy agents.
pub const POLL_MS: Ms = 250;

/// An agent's state. Serialised in snake case (`available`, `ringing`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum AgentState {
    Available,
    /// Offered a call that has not been answered yet.
    Ringing {
        since: Ms,
    },
    OnCall {
        since: Ms,
    },
    /// After a call; available again at `until`.
    WrapUp {
        until: Ms,
    },
    Paused,
}

impl AgentState {
    pub fn name(&self) -> &'static str {
        match self {
            AgentState::Available => "available",
            AgentState::Ringing { .. } => "ringing",
            AgentState::OnCall { .. } => "on_call",
            AgentState::WrapUp { .. } => "wrap_up",
            AgentState::Paused => "paused",
        }
    }
}

#[derive(Debug, Clone)]
struct Agent {
    spec: AgentSpec,
    state: AgentState,
    idle_since: Ms,
}

/// Why a waiting caller is handed back to the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The queue's `wait_timeout_s` passed.
    Timeout,
    /// Every agent with the skills is paused: nobody will come.
    AllPaused,
    /// No agent has the queue's skills.
    NoAgent,
    /// Every agent with the skills is paused or unreachable (registers to
    /// waihu but has no live registration), and some are unreachable.
    Unregistered,
}

impl GiveUp {
    pub fn name(self) -> &'static str {
        match self {
            GiveUp::Timeout => "timeout",
            GiveUp::AllPaused => "all_paused",
            GiveUp::NoAgent => "no_agent",
            GiveUp::Unregistered => "unregistered",
        }
    }
}

/// What the runtime does next for a waiting caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Call this agent, ringing at most `ring_ms`.
    Offer {
        agent: String,
        uri: String,
        ring_ms: Ms,
    },
    /// Nobody free yet: ask again at `until`.
    Wait { until: Ms },
    /// Stop waiting after `waited_ms`.
    GiveUp { reason: GiveUp, waited_ms: Ms },
}

/// One caller waiting in a queue.
#[derive(Debug, Clone)]
pub struct Waiting {
    queue: usize,
    since: Ms,
    /// The longest this caller waits, when not the queue's `wait_timeout_s`.
    wait_ms: Option<Ms>,
    /// Agents offered this caller who did not answer.
    tried: Vec<usize>,
    /// The agent ringing for this caller.
    offered: Option<usize>,
}

impl Waiting {
    pub fn since(&self) -> Ms {
        self.since
    }
    /// Milliseconds waited at `now`.
    pub fn waited(&self, now: Ms) -> Ms {
        now.saturating_sub(self.since)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    #[error("no queue named {0:?} in the agents file / 坐席配置中没有这个队列")]
    UnknownQueue(String),
    #[error("no agent with id {0:?} / 没有这个坐席")]
    UnknownAgent(String),
    #[error("agent {0:?} is on a call or ringing; pause after it / 坐席正在通话")]
    Busy(String),
}

/// Agents, queues and their states.
#[derive(Debug, Clone)]
pub struct Acd {
    agents: Vec<Agent>,
    queues: Vec<QueueSpec>,
}

impl Acd {
    /// Every agent starts available (or paused, as configured), idle since `now`.
    pub fn new(cfg: Config, now: Ms) -> Acd {
        let agents = cfg
            .agents
            .into_iter()
            .map(|spec| Agent {
                state: if spec.paused {
                    AgentState::Paused
                } else {
                    AgentState::Available
                },
                spec,
                idle_since: now,
            })
            .collect();
        Acd {
            agents,
            queues: cfg.queues,
        }
    }

    pub fn queue(&self, name: &str) -> Option<&QueueSpec> {
        self.queues.iter().find(|q| q.name == name)
    }

    pub fn queues(&self) -> &[QueueSpec] {
        &self.queues
    }

    /// An agent's state at `now` (a wrap-up that is over reads `available`).
    pub fn state(&mut self, agent: &str, now: Ms) -> Option<AgentState> {
        self.tick(now);
        self.agents
            .iter()
            .find(|a| a.spec.id == agent)
            .map(|a| a.state)
    }

    /// Wrap-ups that are over end at `now`.
    pub fn tick(&mut self, now: Ms) {
        for a in &mut self.agents {
            if let AgentState::WrapUp { until } = a.state {
                if until <= now {
                    a.state = AgentState::Available;
                    a.idle_since = until;
                }
            }
        }
    }

    fn index(&self, agent: &str) -> Result<usize, AcdError> {
        self.agents
            .iter()
            .position(|a| a.spec.id == agent)
            .ok_or_else(|| AcdError::UnknownAgent(agent.into()))
    }

    /// The agent stops taking calls (not while ringing or on a call).
    pub fn pause(&mut self, agent: &str, now: Ms) -> Result<(), AcdError> {
        self.tick(now);
        let i = self.index(agent)?;
        let a = &mut self.agents[i];
        match a.state {
            AgentState::Ringing { .. } | AgentState::OnCall { .. } => {
                Err(AcdError::Busy(agent.into()))
            }
            _ => {
                a.state = AgentState::Paused;
                Ok(())
            }
        }
    }

    /// A paused agent takes calls again, idle from `now`.
    pub fn resume(&mut self, agent: &str, now: Ms) -> Result<(), AcdError> {
        let i = self.index(agent)?;
        let a = &mut self.agents[i];
        if a.state == AgentState::Paused {
            a.state = AgentState::Available;
            a.idle_since = now;
        }
        Ok(())
    }

    /// A caller starts waiting in `queue`.
    pub fn request(&mut self, queue: &str, now: Ms) -> Result<Waiting, AcdError> {
        let q = self
            .queues
            .iter()
            .position(|q| q.name == queue)
            .ok_or_else(|| AcdError::UnknownQueue(queue.into()))?;
        Ok(Waiting {
            queue: q,
            since: now,
            wait_ms: None,
            tried: Vec::new(),
            offered: None,
        })
    }

    /// A caller starts waiting in `queue` for at most `wait_ms` — an answered
    /// call of a predictive campaign, which must reach an agent within the
    /// abandon rule's 2 s, not the queue's minutes.
    pub fn request_within(
        &mut self,
        queue: &str,
        now: Ms,
        wait_ms: Ms,
    ) -> Result<Waiting, AcdError> {
        let mut w = self.request(queue, now)?;
        w.wait_ms = Some(wait_ms);
        Ok(w)
    }

    fn skilled(&self, q: &QueueSpec) -> Vec<usize> {
        self.agents
            .iter()
            .enumerate()
            .filter(|(_, a)| q.required().all(|s| a.spec.skills.iter().any(|k| k == s)))
            .map(|(i, _)| i)
            .collect()
    }

    /// (agent id, register user) of every agent that registers to waihu.
    pub fn registrations(&self) -> Vec<(String, String)> {
        self.agents
            .iter()
            .filter_map(|a| Some((a.spec.id.clone(), a.spec.register.as_ref()?.user.clone())))
            .collect()
    }

    /// [`Acd::next_with`] where an agent's contact is its configured `uri`
    /// (agents that only register are unreachable).
    pub fn next(&mut self, w: &mut Waiting, now: Ms) -> Step {
        self.next_with(w, now, &|a: &AgentSpec| a.uri.clone())
    }

    /// What to do for `w` at `now`: offer the longest-idle skilled agent that
    /// `contact` can reach (the offer carries that contact), wait, or give up.
    /// An offer puts the agent in `ringing` until [`Acd::answered`] or
    /// [`Acd::no_answer`].
    pub fn next_with(
        &mut self,
        w: &mut Waiting,
        now: Ms,
        contact: &dyn Fn(&AgentSpec) -> Option<String>,
    ) -> Step {
        self.tick(now);
        let q = self.queues[w.queue].clone();
        let wait = w.wait_ms.unwrap_or(q.wait_timeout_s * 1000);
        let deadline = w.since + wait;
        let waited_ms = w.waited(now);
        let skilled = self.skilled(&q);
        if skilled.is_empty() {
            return Step::GiveUp {
                reason: GiveUp::NoAgent,
                waited_ms,
            };
        }
        if skilled
            .iter()
            .all(|&i| self.agents[i].state == AgentState::Paused)
        {
            return Step::GiveUp {
                reason: GiveUp::AllPaused,
                waited_ms,
            };
        }
        let contacts: Vec<Option<String>> = skilled
            .iter()
            .map(|&i| contact(&self.agents[i].spec))
            .collect();
        if skilled
            .iter()
            .zip(&contacts)
            .all(|(&i, c)| self.agents[i].state == AgentState::Paused || c.is_none())
        {
            return Step::GiveUp {
                reason: GiveUp::Unregistered,
                waited_ms,
            };
        }
        // Less than a second left is too short to ring anyone — a tenth of a
        // short wait (a predictive call's 2 s: 200 ms, enough for an agent in
        // auto-answer).
        if now + (wait / 10).min(1000) > deadline {
            return Step::GiveUp {
                reason: GiveUp::Timeout,
                waited_ms,
            };
        }
        let free: Vec<usize> = skilled
            .iter()
            .zip(&contacts)
            .filter(|(&i, c)| self.agents[i].state == AgentState::Available && c.is_some())
            .map(|(&i, _)| i)
            .collect();
        // Untried agents first; once every free one was tried, they may be rung again.
        let untried: Vec<usize> = free
            .iter()
            .copied()
            .filter(|i| !w.tried.contains(i))
            .collect();
        let pool = if untried.is_empty() { free } else { untried };
        let pick = pool
            .into_iter()
            .min_by_key(|&i| (self.agents[i].idle_since, i));
        match pick {
            Some(i) => {
                let uri = skilled
                    .iter()
                    .position(|&k| k == i)
                    .and_then(|k| contacts[k].clone())
                    .unwrap_or_default();
                let a = &mut self.agents[i];
                a.state = AgentState::Ringing { since: now };
                w.offered = Some(i);
                Step::Offer {
                    agent: a.spec.id.clone(),
                    uri,
                    ring_ms: (q.ring_timeout_s * 1000).min(deadline - now),
                }
            }
            None => {
                let wrap = skilled
                    .iter()
                    .filter_map(|&i| match self.agents[i].state {
                        AgentState::WrapUp { until } => Some(until),
                        _ => None,
                    })
                    .min()
                    .unwrap_or(Ms::MAX);
                Step::Wait {
                    until: (now + POLL_MS).min(wrap).min(deadline).max(now + 1),
                }
            }
        }
    }

    /// The offered agent answered: on a call from `now`.
    pub fn answered(&mut self, w: &Waiting, now: Ms) {
        if let Some(i) = w.offered {
            self.agents[i].state = AgentState::OnCall { since: now };
        }
    }

    /// The offered agent did not answer (rang out, busy, failed): available
    /// again, skipped for this caller while others remain.
    pub fn no_answer(&mut self, w: &mut Waiting, _now: Ms) {
        if let Some(i) = w.offered.take() {
            if matches!(self.agents[i].state, AgentState::Ringing { .. }) {
                self.agents[i].state = AgentState::Available;
            }
            if !w.tried.contains(&i) {
                w.tried.push(i);
            }
        }
    }

    /// The caller hung up while waiting: a ringing agent is free again.
    pub fn abandon(&mut self, w: &mut Waiting, now: Ms) {
        if let Some(i) = w.offered {
            if matches!(self.agents[i].state, AgentState::Ringing { .. }) {
                self.agents[i].state = AgentState::Available;
                w.offered = None;
            }
        }
        let _ = now;
    }

    /// The agent's call ended at `now`: wrap-up for the queue's time (the
    /// queue of the call just ended), then available.
    pub fn ended(&mut self, agent: &str, now: Ms) {
        self.ended_in(agent, None, now)
    }

    /// [`Acd::ended`] for a call of the waiting `w` (its queue's wrap-up).
    pub fn ended_call(&mut self, w: &Waiting, now: Ms) {
        if let Some(i) = w.offered {
            let id = self.agents[i].spec.id.clone();
            let q = self.queues[w.queue].name.clone();
            self.ended_in(&id, Some(&q), now);
        }
    }

    fn ended_in(&mut self, agent: &str, queue: Option<&str>, now: Ms) {
        let wrap = queue
            .and_then(|q| self.queue(q))
            .map(|q| q.wrap_up_s)
            .unwrap_or(config::DEFAULT_WRAP_UP_S);
        if let Ok(i) = self.index(agent) {
            let a = &mut self.agents[i];
            if matches!(
                a.state,
                AgentState::OnCall { .. } | AgentState::Ringing { .. }
            ) {
                a.state = if wrap == 0 {
                    a.idle_since = now;
                    AgentState::Available
                } else {
                    AgentState::WrapUp {
                        until: now + wrap * 1000,
                    }
                };
            }
        }
    }

    /// (agent, state) of every agent skilled for `queue` at `now`; `None`
    /// for an unknown queue. Predictive pacing reads it.
    pub fn queue_states(&mut self, queue: &str, now: Ms) -> Option<Vec<(&AgentSpec, AgentState)>> {
        self.tick(now);
        let q = self.queues.iter().find(|q| q.name == queue)?.clone();
        let idx = self.skilled(&q);
        Some(
            idx.into_iter()
                .map(|i| (&self.agents[i].spec, self.agents[i].state))
                .collect(),
        )
    }

    /// (id, state) of every agent at `now`, in file order.
    pub fn snapshot(&mut self, now: Ms) -> Vec<(String, AgentState)> {
        self.tick(now);
        self.agents
            .iter()
            .map(|a| (a.spec.id.clone(), a.state))
            .collect()
    }
}

#[cfg(test)]
mod tests;
