//! Campaign engine: whom to call, when, and how often — compliant by
//! construction. Sans-IO: nothing here reads a clock, opens a socket or
//! spawns; the runtime (or the simulator) passes `now` in.
//!
//! ```text
//! let campaign = Campaign::from_yaml(&text)?;          // validated, errors name the field
//! let mut planner = Planner::new(campaign);
//! planner.add_contact(ContactInput { .. })?;           // for each customer
//! loop {
//!     for dial in planner.next_dials(now, free_channels) { place(dial) }   // gate passed
//!     for (contact, report) in finished_calls() {
//!         for action in planner.on_outcome(now, contact, report) { carry_out(action) }
//!     }
//!     sleep_until(planner.next_wakeup());
//! }
//! ```
//!
//! - [`config`]: the YAML campaign definition and its validation.
//! - [`planner`]: eligibility (one gate), ranking, retries, callbacks, caller IDs, trunks.
//! - [`learned`]: the learned policy's propensity models, channel choice and explanations.
//! - [`message_gate`]: quiet hours and per-number caps for SMS and push (the message side of the one gate).
//! - [`model`]: answer probability per hour of week with Beta-Binomial shrinkage.
//! - [`pacing`]: progressive and adaptive predictive pacing.
//! - [`sim`]: virtual-time simulator with synthetic customers.
//! - [`trunks`]: SIP trunks as configuration (file:line:column errors) and the runtime's
//!   trunk selector (weights, channels, CPS, failure back-off).
pub mod config;
pub mod forecast;
pub mod learned;
pub mod message_gate;
pub mod model;
pub mod pacing;
pub mod planner;
pub mod sim;
pub mod trunks;

pub use config::{AgentConnect, Campaign, ConfigError, ConfigIssue, PacingMode, Policy};
pub use forecast::{forecast, Forecast, ForecastConfig, ForecastDay};
pub use pacing::{AgentView, MeasuredPacer, PredictivePacer};
pub use planner::{
    Action, ChannelPref, ContactInput, ContactRef, ContactStatus, Dial, Ineligible, OwnAttempt,
    PastAttempt, PastCall, Planner, Report,
};
pub use sim::{simulate, simulate_with, PlannerTimer, SimConfig, SimReport};

/// The example campaign shipped in `examples/campaign.yaml` (the simulator's default).
pub const EXAMPLE_CAMPAIGN: &str = include_str!("../../../examples/campaign.yaml");
pub use chrono_tz;
