//! Many dialer nodes sharing campaigns through one PostgreSQL, with no coordinator process.
//!
//! - **Leases.** A node [`Cluster::claim`]s due contacts with `FOR UPDATE SKIP LOCKED`: two
//!   nodes never get the same contact, and neither waits for the other. A lease lasts `ttl`
//!   and is renewed by the node's [`Cluster::heartbeat`].
//! - **The gate.** [`Cluster::begin_attempt`] commits the dial in one transaction under the
//!   number's advisory lock: the lease is still this node's, the number is not do-not-call,
//!   no call to it is open on any node (also a unique index), the per-number caps over all
//!   nodes and the contact's attempts leave room ([`gate::decide`]), and the campaign is
//!   started with a free shared channel and CPS slot (one conditional `UPDATE`). The attempt
//!   row and its `attempt_started` event are written in the same transaction.
//! - **Dead nodes.** [`Cluster::reap`] (any node, periodically) declares a node whose heartbeat
//!   is older than the timeout lost: its open attempts are ended (`failed`), its channels
//!   freed and its leases released to the survivors. A lost node that wakes up learns it
//!   from its next heartbeat ([`NodeStatus::Lost`]) and must drop its calls.
//! - **Control.** [`Cluster::set_campaign_state`] changes a campaign and `NOTIFY`s
//!   `waihu_control` in the same transaction; [`Cluster::control_listener`] receives it.
//! - **One log.** Every node appends to `cluster_events`; [`Cluster::events`] reads the
//!   merged log in time order for the compliance checker and the dashboard.
//!
//! *Invariant:* no clock is read here; every operation takes `now`. All cross-node
//! decisions are made inside one database transaction; the database never decides alone
//! (it only counts and locks), [`gate`] does, without I/O.
pub mod gate;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};
use waihu_core::{CallId, CallOutcome, CampaignId, CustomerId, Event, EventKind, PhoneIndex};

pub use gate::{Caps, Counted, Refusal};

/// How far ahead the gate reserves a campaign's next CPS slot rather than refusing.
pub const SLOT_WAIT: chrono::Duration = chrono::Duration::seconds(1);

/// The `NOTIFY` channel of campaign state changes (payload `<campaign id>:<state>`).
pub const CONTROL_CHANNEL: &str = "waihu_control";

/// The `NOTIFY` channel of the merged log: every event any node appends (payload: its
/// `cluster_events` id), delivered when the change it records commits.
pub const EVENTS_CHANNEL: &str = "waihu_events";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, ClusterError>;

fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_us(v: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(v).single().unwrap_or_default()
}

/// `t` at the database's resolution, so the log and the tables say the same instant.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    from_us(us(t))
}

/// A campaign as the cluster shares it.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignSpec {
    pub id: CampaignId,
    pub name: String,
    /// Concurrent calls over all nodes.
    pub channels: u32,
    /// New calls per second over all nodes.
    pub cps: f64,
    pub caps: Caps,
}

/// One contact to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewContact {
    pub customer: CustomerId,
    pub phone: PhoneIndex,
    /// IANA zone of the callee.
    pub tz: String,
    pub due: DateTime<Utc>,
}

/// A contact leased to this node.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub campaign: CampaignId,
    pub customer: CustomerId,
    pub phone: PhoneIndex,
    pub tz: String,
    pub attempts: u32,
    /// The callee asked to be called back at this time (on whichever node placed the call
    /// that heard it): the node dials it then, ahead of other contacts.
    pub callback: Option<DateTime<Utc>>,
}

/// A dial the gate let through.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// When the call may go out (its shared CPS slot; never before the number's previous
    /// call ended): the time the log records. At most [`SLOT_WAIT`] after the gate's `now`.
    pub at: DateTime<Utc>,
    pub id: i64,
    pub call: CallId,
    pub campaign: CampaignId,
    pub customer: CustomerId,
}

/// What a heartbeat learned about this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    Up,
    /// Declared lost by another node: its calls were ended in the log; drop them and re-join.
    Lost,
    /// An operator asked this node to drain ([`Cluster::drain`]): no new dials, hand the
    /// leases back, let the live calls finish, then leave.
    Draining,
}

/// A node as the cluster sees it (API and dashboard).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub state: String,
    pub heartbeat: DateTime<Utc>,
    pub open_calls: i64,
    pub leases: i64,
}

/// A call open now on some node.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LiveCall {
    pub node: String,
    pub call: String,
    pub campaign: i64,
    pub customer: i64,
    pub started: DateTime<Utc>,
}

/// Ended attempts of one campaign on one node with one outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutcomeCount {
    pub campaign: i64,
    pub node: String,
    pub outcome: String,
    pub count: i64,
}

/// What becomes of the contact after a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Finished (reached, refused, invalid number...).
    Done,
    /// Due again at this time (any node may take it).
    RetryAt(DateTime<Utc>),
    /// The callee asked to be called back at this time: due then, and claimed by any node
    /// ahead of the other due contacts.
    Callback(DateTime<Utc>),
}

/// A campaign-state change received by [`ControlListener::recv`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub campaign: CampaignId,
    pub state: String,
}

/// One node's handle on the cluster.
#[derive(Clone)]
pub struct Cluster {
    pool: PgPool,
    node: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).finish()
    }
}

/// A campaign as the cluster shares it, with its progress (API, dashboard, CLI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CampaignInfo {
    pub id: i64,
    pub name: String,
    pub state: String,
    /// Calls open now over all nodes, of `channels`.
    pub in_flight: i32,
    pub channels: i32,
    pub cps: f64,
    pub pending: i64,
    pub done: i64,
    /// Who last changed its state, and when.
    pub updated_by: Option<String>,
    pub updated: DateTime<Utc>,
}

fn check_field(what: &str, v: &str) -> Result<()> {
    if v.is_empty() || v.chars().any(|c| c.is_control() || c == '\\') {
        return Err(ClusterError::Invalid(format!(
            "{what}: empty or holds a control character or backslash: {v:?}"
        )));
    }
    Ok(())
}

const STATES: [&str; 5] = ["created", "started", "paused", "stopped", "finished"];

impl Cluster {
    /// Connects as `node` (a name unique in the cluster), with up to `connections` connections,
    /// and brings the schema up to date (idempotent; concurrent nodes serialise on sqlx's
    /// migration lock).
    pub async fn connect(url: &str, node: &str, connections: u32) -> Result<Cluster> {
        check_field("node name", node)?;
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Cluster {
            pool,
            node: node.to_string(),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool (a clean exit; a killed node just disappears).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Joins (or re-joins) the cluster: the node is `up` from `now`.
    pub async fn join(&self, now: DateTime<Utc>) -> Result<()> {
        let now = micros(now);
        let mut tx = self.pool.begin().await?;
        self.end_node(&mut tx, &self.node, now).await?;
        sqlx::query(
            "INSERT INTO cluster_nodes (name, started_us, heartbeat_us, state) VALUES ($1, $2, $2, 'up')
             ON CONFLICT (name) DO UPDATE SET started_us = $2, heartbeat_us = $2, state = 'up'",
        )
        .bind(&self.node)
        .bind(us(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Proves this node alive and renews its leases until `now + ttl`. A node declared lost
    /// renews nothing and is told so.
    pub async fn heartbeat(&self, now: DateTime<Utc>, ttl: chrono::Duration) -> Result<NodeStatus> {
        let mut tx = self.pool.begin().await?;
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE cluster_nodes SET heartbeat_us = $2 WHERE name = $1 AND state IN ('up', 'draining')
             RETURNING state",
        )
        .bind(&self.node)
        .bind(us(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(state) = state else {
            tx.commit().await?;
            return Ok(NodeStatus::Lost);
        };
        // A draining node hands its idle contacts back itself; those on a call stay leased
        // (renewed here) until the call's end re-queues or finishes them.
        sqlx::query(
            "UPDATE cluster_contacts SET lease_until_us = $2 WHERE lease_node = $1 AND state = 'pending'",
        )
        .bind(&self.node)
        .bind(us(now + ttl))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if state == "draining" {
            NodeStatus::Draining
        } else {
            NodeStatus::Up
        })
    }

    /// Asks node `name` to drain (`true`), or puts a draining node back in service (`false`).
    /// The node hears it at its next heartbeat. An error names a node that is not up or
    /// draining.
    pub async fn drain(&self, name: &str, drain: bool) -> Result<()> {
        let (from, to) = if drain {
            ("up", "draining")
        } else {
            ("draining", "up")
        };
        let r = sqlx::query(
            "UPDATE cluster_nodes SET state = $3 WHERE name = $1 AND state IN ($2, $3)",
        )
        .bind(name)
        .bind(from)
        .bind(to)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(ClusterError::Invalid(format!(
                "no node {name:?} that is {from} (see `waihu cluster status`)"
            )));
        }
        Ok(())
    }

    /// Creates or updates a campaign's shared limits (its state is left as it is).
    pub async fn upsert_campaign(&self, c: &CampaignSpec, now: DateTime<Utc>) -> Result<()> {
        check_field("campaign name", &c.name)?;
        if c.channels == 0 || !(c.cps > 0.0 && c.cps.is_finite()) || c.caps.max_attempts == 0 {
            return Err(ClusterError::Invalid(format!(
                "campaign {}: channels, cps and max_attempts must be positive",
                c.id
            )));
        }
        sqlx::query(
            "INSERT INTO cluster_campaigns (id, name, channels, cps, per_day, per_week, max_attempts, updated_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET name = $2, channels = $3, cps = $4, per_day = $5,
                 per_week = $6, max_attempts = $7, updated_us = $8",
        )
        .bind(c.id.0)
        .bind(&c.name)
        .bind(c.channels as i32)
        .bind(c.cps)
        .bind(c.caps.per_day.map(|v| v as i32))
        .bind(c.caps.per_week.map(|v| v as i32))
        .bind(c.caps.max_attempts as i32)
        .bind(us(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Adds contacts with `COPY` into a staging table and one `INSERT ... ON CONFLICT DO
    /// NOTHING`: a contact already queued keeps its state. Returns how many were new.
    pub async fn enqueue(&self, campaign: CampaignId, contacts: &[NewContact]) -> Result<u64> {
        let mut text = String::with_capacity(contacts.len() * 96);
        for (i, c) in contacts.iter().enumerate() {
            let at = |f: &str| format!("contact {} (customer {}): {f}", i + 1, c.customer);
            check_field(&at("phone"), &c.phone.0)?;
            check_field(&at("tz"), &c.tz)?;
            c.tz.parse::<Tz>()
                .map_err(|_| ClusterError::Invalid(at(&format!("tz: unknown zone {:?}", c.tz))))?;
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                campaign.0,
                c.customer.0,
                c.phone.0,
                c.tz,
                us(c.due)
            ));
        }
        let mut conn = self.pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::query(
            "CREATE TEMP TABLE cluster_staging (campaign BIGINT, customer BIGINT, phone TEXT, tz TEXT, next_us BIGINT)
             ON COMMIT DROP",
        )
        .execute(&mut *tx)
        .await?;
        let mut copy = tx
            .copy_in_raw("COPY cluster_staging (campaign, customer, phone, tz, next_us) FROM STDIN")
            .await?;
        copy.send(text.into_bytes()).await?;
        copy.finish().await?;
        let added = sqlx::query(
            "INSERT INTO cluster_contacts (campaign, customer, phone, tz, next_us)
             SELECT campaign, customer, phone, tz, next_us FROM cluster_staging
             ON CONFLICT (campaign, customer) DO NOTHING",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(added)
    }

    /// Puts a number on the shared do-not-call list.
    pub async fn add_dnc(
        &self,
        phone: &PhoneIndex,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        check_field("phone", &phone.0)?;
        sqlx::query(
            "INSERT INTO cluster_dnc (phone, reason, added_us) VALUES ($1, $2, $3) ON CONFLICT (phone) DO NOTHING",
        )
        .bind(&phone.0)
        .bind(reason)
        .bind(us(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Changes a campaign's state, logs it with who asked (`actor`: an API caller, a CLI
    /// user, a node), and notifies every node, atomically.
    pub async fn set_campaign_state(
        &self,
        campaign: CampaignId,
        state: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = micros(now);
        check_field("actor", actor)?;
        if !STATES.contains(&state) {
            return Err(ClusterError::Invalid(format!(
                "campaign state {state:?}: one of {}",
                STATES.join(", ")
            )));
        }
        let mut tx = self.pool.begin().await?;
        let n =
            sqlx::query("UPDATE cluster_campaigns SET state = $2, updated_us = $3, updated_by = $4 WHERE id = $1")
                .bind(campaign.0)
                .bind(state)
                .bind(us(now))
                .bind(actor)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n == 0 {
            return Err(ClusterError::Invalid(format!(
                "no campaign {campaign} in the cluster"
            )));
        }
        let ev = Event {
            at: now,
            customer: None,
            campaign: Some(campaign),
            call: None,
            kind: EventKind::CampaignState {
                state: state.to_string(),
                actor: Some(actor.to_string()),
            },
        };
        self.append(&mut tx, &ev).await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CONTROL_CHANNEL)
            .bind(format!("{}:{state}", campaign.0))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A campaign's current state.
    pub async fn campaign_state(&self, campaign: CampaignId) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT state FROM cluster_campaigns WHERE id = $1")
                .bind(campaign.0)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Listens to campaign-state changes (its own connection, outside the pool).
    pub async fn control_listener(&self) -> Result<ControlListener> {
        Ok(ControlListener(self.listener(CONTROL_CHANNEL).await?))
    }

    /// A listener on its own connection: a one-connection pool of its own (which `PgListener`
    /// uses to reconnect), so listening never holds one of the node's pooled connections.
    async fn listener(&self, channel: &str) -> Result<PgListener> {
        let own = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_with((*self.pool.connect_options()).clone())
            .await?;
        let mut l = PgListener::connect_with(&own).await?;
        l.listen(channel).await?;
        Ok(l)
    }

    /// Leases up to `max` due contacts of a campaign to this node until `now + ttl`, due
    /// callbacks first, then the longest due. Contacts another node holds (a live lease, or a
    /// row another claim is locking) are skipped.
    pub async fn claim(
        &self,
        campaign: CampaignId,
        max: u32,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Vec<Lease>> {
        let rows = sqlx::query(
            "UPDATE cluster_contacts c SET lease_node = $1, lease_until_us = $2
             FROM (SELECT campaign, customer FROM cluster_contacts
                   WHERE campaign = $3 AND state = 'pending' AND next_us <= $4
                     AND (lease_node IS NULL OR lease_until_us < $4)
                   ORDER BY callback DESC, next_us, customer LIMIT $5
                   FOR UPDATE SKIP LOCKED) d
             WHERE c.campaign = d.campaign AND c.customer = d.customer
             RETURNING c.customer, c.phone, c.tz, c.attempts, c.callback, c.next_us",
        )
        .bind(&self.node)
        .bind(us(now + ttl))
        .bind(campaign.0)
        .bind(us(now))
        .bind(max as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Lease {
                campaign,
                customer: CustomerId(r.get(0)),
                phone: PhoneIndex(r.get(1)),
                tz: r.get(2),
                attempts: r.get::<i32, _>(3) as u32,
                callback: r.get::<bool, _>(4).then(|| from_us(r.get(5))),
            })
            .collect())
    }

    /// Gives a leased contact back without dialling it (it is due again at `due`; a callback
    /// stays a callback).
    pub async fn release(&self, lease: &Lease, due: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE cluster_contacts SET lease_node = NULL, lease_until_us = NULL, next_us = $4
             WHERE campaign = $1 AND customer = $2 AND lease_node = $3",
        )
        .bind(lease.campaign.0)
        .bind(lease.customer.0)
        .bind(&self.node)
        .bind(us(due))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Finishes a leased contact without dialling it (the node's planner decided: no consent,
    /// do-not-call, out of attempts, not worth a call), with `reason` for reports. `false`
    /// when the lease was no longer this node's (nothing changed).
    pub async fn finish_contact(&self, lease: &Lease, reason: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE cluster_contacts SET lease_node = NULL, lease_until_us = NULL, state = 'done',
                 reason = $4
             WHERE campaign = $1 AND customer = $2 AND lease_node = $3 AND state = 'pending'",
        )
        .bind(lease.campaign.0)
        .bind(lease.customer.0)
        .bind(&self.node)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The gate: commits a dial of a leased contact, or says why not (see the crate docs).
    /// `call` must be unique in the cluster; `channel` names the trunk for the log.
    pub async fn begin_attempt(
        &self,
        lease: &Lease,
        call: &CallId,
        channel: &str,
        caller_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<Attempt, Refusal>> {
        let now = micros(now);
        let tz: Tz = lease
            .tz
            .parse()
            .map_err(|_| ClusterError::Invalid(format!("unknown zone {:?}", lease.tz)))?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(&lease.phone.0)
            .execute(&mut *tx)
            .await?;
        // The dial's time: never before the end of the number's previous call, whichever
        // node's clock logged that end, so the merged log shows the calls one after another
        // as the database ordered them.
        let last_end: Option<i64> =
            sqlx::query_scalar("SELECT max(ended_us) FROM cluster_attempts WHERE phone = $1")
                .bind(&lease.phone.0)
                .fetch_one(&mut *tx)
                .await?;
        let now = last_end.map_or(now, |e| now.max(from_us(e)));
        let spans = gate::local_spans(tz, now);
        let contact = sqlx::query(
            "SELECT state, attempts, lease_node, lease_until_us FROM cluster_contacts
             WHERE campaign = $1 AND customer = $2 FOR UPDATE",
        )
        .bind(lease.campaign.0)
        .bind(lease.customer.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(contact) = contact else {
            return Ok(Err(Refusal::LeaseLost));
        };
        let held = contact.get::<String, _>(0) == "pending"
            && contact.get::<Option<String>, _>(2).as_deref() == Some(self.node.as_str())
            && contact
                .get::<Option<i64>, _>(3)
                .is_some_and(|u| u >= us(now));
        if !held {
            return Ok(Err(Refusal::LeaseLost));
        }
        let campaign = sqlx::query(
            "SELECT state, per_day, per_week, max_attempts, cps FROM cluster_campaigns WHERE id = $1",
        )
        .bind(lease.campaign.0)
        .fetch_one(&mut *tx)
        .await?;
        let state: String = campaign.get(0);
        if state != "started" {
            return Ok(Err(Refusal::NotStarted(state)));
        }
        let caps = Caps {
            per_day: campaign.get::<Option<i32>, _>(1).map(|v| v as u32),
            per_week: campaign.get::<Option<i32>, _>(2).map(|v| v as u32),
            max_attempts: campaign.get::<i32, _>(3) as u32,
        };
        let counts = sqlx::query(
            "SELECT
               (SELECT count(*) FROM cluster_attempts WHERE phone = $1 AND started_us >= $2 AND started_us < $3),
               (SELECT count(*) FROM cluster_attempts WHERE phone = $1 AND started_us >= $4 AND started_us < $5),
               EXISTS (SELECT 1 FROM cluster_attempts WHERE phone = $1 AND ended_us IS NULL),
               EXISTS (SELECT 1 FROM cluster_dnc WHERE phone = $1)",
        )
        .bind(&lease.phone.0)
        .bind(us(spans.day.0))
        .bind(us(spans.day.1))
        .bind(us(spans.week.0))
        .bind(us(spans.week.1))
        .fetch_one(&mut *tx)
        .await?;
        let counted = Counted {
            day: counts.get::<i64, _>(0) as u32,
            week: counts.get::<i64, _>(1) as u32,
            contact_attempts: contact.get::<i32, _>(1) as u32,
            open_call: counts.get(2),
            dnc: counts.get(3),
        };
        if let Err(refusal) = gate::decide(&caps, &spans, &counted) {
            self.settle_refusal(&mut tx, lease, &refusal, now).await?;
            tx.commit().await?;
            return Ok(Err(refusal));
        }
        // The campaign's shared channel and CPS slot, in one conditional update. The slot is
        // the next free one on the campaign's CPS grid, at most SLOT_WAIT ahead: the node waits
        // for it (Attempt::at) instead of being refused and coming back, which would cost
        // another transaction and lose to any node whose clock reads a little later.
        let interval = (1e6 / campaign.get::<f64, _>(4)).ceil() as i64;
        let slot: Option<i64> = sqlx::query_scalar(
            "UPDATE cluster_campaigns SET in_flight = in_flight + 1,
                 next_dial_us = GREATEST(next_dial_us, $2) + $3
             WHERE id = $1 AND state = 'started' AND in_flight < channels AND next_dial_us <= $2 + $4
             RETURNING next_dial_us - $3",
        )
        .bind(lease.campaign.0)
        .bind(us(now))
        .bind(interval)
        .bind(SLOT_WAIT.num_microseconds().unwrap_or(0))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(slot) = slot else {
            let r = sqlx::query(
                "SELECT state, in_flight, channels, next_dial_us FROM cluster_campaigns WHERE id = $1",
            )
            .bind(lease.campaign.0)
            .fetch_one(&mut *tx)
            .await?;
            let state: String = r.get(0);
            let refusal = if state != "started" {
                Refusal::NotStarted(state)
            } else if r.get::<i32, _>(1) >= r.get::<i32, _>(2) {
                Refusal::ChannelsFull
            } else {
                Refusal::Paced {
                    until: from_us(r.get::<i64, _>(3) - SLOT_WAIT.num_microseconds().unwrap_or(0)),
                }
            };
            return Ok(Err(refusal));
        };
        let now = now.max(from_us(slot));
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO cluster_attempts (campaign, customer, phone, node, call_id, started_us)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(lease.campaign.0)
        .bind(lease.customer.0)
        .bind(&lease.phone.0)
        .bind(&self.node)
        .bind(&call.0)
        .bind(us(now))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE cluster_contacts SET attempts = attempts + 1 WHERE campaign = $1 AND customer = $2",
        )
        .bind(lease.campaign.0)
        .bind(lease.customer.0)
        .execute(&mut *tx)
        .await?;
        let ev = Event {
            at: now,
            customer: Some(lease.customer),
            campaign: Some(lease.campaign),
            call: Some(call.clone()),
            kind: EventKind::AttemptStarted {
                phone: lease.phone.clone(),
                tz: lease.tz.clone(),
                local_time: now.with_timezone(&tz).to_rfc3339(),
                caller_id: caller_id.map(str::to_string),
                channel: channel.to_string(),
            },
        };
        self.append(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(Ok(Attempt {
            at: now,
            id,
            call: call.clone(),
            campaign: lease.campaign,
            customer: lease.customer,
        }))
    }

    /// What a refusal does to the contact, inside the gate's transaction.
    async fn settle_refusal(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        lease: &Lease,
        refusal: &Refusal,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (done, next) = match refusal {
            Refusal::Dnc | Refusal::MaxAttempts => (true, now),
            Refusal::DailyCap { next } | Refusal::WeeklyCap { next } => (false, *next),
            // Busy elsewhere: keep the contact due, let any node retry in a little while.
            Refusal::NumberBusy => (false, now + chrono::Duration::seconds(5)),
            _ => return Ok(()),
        };
        sqlx::query(
            "UPDATE cluster_contacts SET lease_node = NULL, lease_until_us = NULL, next_us = $3,
                 state = CASE WHEN $4 THEN 'done' ELSE state END,
                 reason = CASE WHEN $4 THEN $5 ELSE reason END
             WHERE campaign = $1 AND customer = $2",
        )
        .bind(lease.campaign.0)
        .bind(lease.customer.0)
        .bind(us(next))
        .bind(done)
        .bind(refusal.label())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Ends a dial: logs its outcome (and `conversation`, the answered call's
    /// `conversation_ended`, for the merged reports), frees its channel, and finishes or
    /// re-queues the contact. `false` when the attempt was already ended (another node reaped
    /// this one); then nothing is logged.
    #[allow(clippy::too_many_arguments)]
    pub async fn end_attempt(
        &self,
        attempt: &Attempt,
        outcome: CallOutcome,
        sip_status: Option<u16>,
        duration_s: f64,
        conversation: Option<EventKind>,
        next: Next,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let now = micros(now);
        let mut tx = self.pool.begin().await?;
        let ended = sqlx::query(
            "UPDATE cluster_attempts SET ended_us = GREATEST($2, started_us), outcome = $3
             WHERE id = $1 AND ended_us IS NULL
             RETURNING ended_us",
        )
        .bind(attempt.id)
        .bind(us(now))
        .bind(outcome.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(ended) = ended else {
            tx.commit().await?;
            return Ok(false);
        };
        // Never before the start (another node's clock may have set it).
        let now = from_us(ended.get::<i64, _>(0));
        let (done, next_us, callback) = match next {
            Next::Done => (true, us(now), false),
            Next::RetryAt(t) => (false, us(t), false),
            Next::Callback(t) => (false, us(t), true),
        };
        sqlx::query(
            "UPDATE cluster_contacts SET next_us = $3, callback = $7,
                 state = CASE WHEN $4 THEN 'done' ELSE state END,
                 reason = CASE WHEN $4 THEN $5 ELSE reason END,
                 lease_node = CASE WHEN lease_node = $6 THEN NULL ELSE lease_node END,
                 lease_until_us = CASE WHEN lease_node = $6 THEN NULL ELSE lease_until_us END
             WHERE campaign = $1 AND customer = $2",
        )
        .bind(attempt.campaign.0)
        .bind(attempt.customer.0)
        .bind(next_us)
        .bind(done)
        .bind(outcome.as_str())
        .bind(&self.node)
        .bind(callback)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE cluster_campaigns SET in_flight = in_flight - 1 WHERE id = $1 AND in_flight > 0")
            .bind(attempt.campaign.0)
            .execute(&mut *tx)
            .await?;
        let ev = Event {
            at: now,
            customer: Some(attempt.customer),
            campaign: Some(attempt.campaign),
            call: Some(attempt.call.clone()),
            kind: EventKind::AttemptEnded {
                outcome,
                sip_status,
                duration_s,
            },
        };
        self.append(&mut tx, &ev).await?;
        if let Some(kind @ EventKind::ConversationEnded { .. }) = conversation {
            self.append(&mut tx, &Event { kind, ..ev }).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Declares nodes silent for longer than `timeout` lost: ends their open attempts
    /// (`failed`), frees their channels and releases their leases. Safe on every node at once
    /// (a node row being reaped elsewhere is skipped). Returns the nodes reaped here.
    pub async fn reap(&self, now: DateTime<Utc>, timeout: chrono::Duration) -> Result<Vec<String>> {
        let now = micros(now);
        let mut tx = self.pool.begin().await?;
        let lost: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM cluster_nodes WHERE state IN ('up', 'draining') AND heartbeat_us < $1
             ORDER BY name FOR UPDATE SKIP LOCKED",
        )
        .bind(us(now - timeout))
        .fetch_all(&mut *tx)
        .await?;
        for node in &lost {
            self.end_node(&mut tx, node, now).await?;
            sqlx::query("UPDATE cluster_nodes SET state = 'lost' WHERE name = $1")
                .bind(node)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(lost)
    }

    /// Ends a node's open attempts (`failed`, the log says so), frees their channels and
    /// releases its leases: the node is gone (reaped), or it is starting again under the
    /// same name and whatever it had open died with its last process.
    async fn end_node(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let open = sqlx::query(
            "SELECT id, campaign, customer, call_id, started_us FROM cluster_attempts
             WHERE node = $1 AND ended_us IS NULL ORDER BY id",
        )
        .bind(node)
        .fetch_all(&mut **tx)
        .await?;
        for r in open {
            let (id, campaign, customer): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
            let started = from_us(r.get(4));
            // Never before its start (a dial may hold a CPS slot up to a second ahead).
            let ended = now.max(started);
            sqlx::query(
                "UPDATE cluster_attempts SET ended_us = $2, outcome = 'failed' WHERE id = $1",
            )
            .bind(id)
            .bind(us(ended))
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "UPDATE cluster_campaigns SET in_flight = in_flight - 1 WHERE id = $1 AND in_flight > 0",
            )
            .bind(campaign)
            .execute(&mut **tx)
            .await?;
            let ev = Event {
                at: ended,
                customer: Some(CustomerId(customer)),
                campaign: Some(CampaignId(campaign)),
                call: Some(CallId(r.get(3))),
                kind: EventKind::AttemptEnded {
                    outcome: CallOutcome::Failed,
                    sip_status: None,
                    duration_s: (ended - started).num_milliseconds() as f64 / 1000.0,
                },
            };
            self.append(tx, &ev).await?;
        }
        sqlx::query(
            "UPDATE cluster_contacts SET lease_node = NULL, lease_until_us = NULL,
                 next_us = LEAST(next_us, $2)
             WHERE lease_node = $1",
        )
        .bind(node)
        .bind(us(now))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Leaves the cluster: the node's leases go back to the others, and any call it still has
    /// open is ended (`failed`) in the log.
    pub async fn leave(&self, now: DateTime<Utc>) -> Result<()> {
        let now = micros(now);
        let mut tx = self.pool.begin().await?;
        // Calls still open (a drain limit passed) end with the process: the log says so, and
        // their numbers are free for the other nodes (a stopped node is never reaped).
        self.end_node(&mut tx, &self.node, now).await?;
        sqlx::query(
            "UPDATE cluster_nodes SET state = 'stopped', heartbeat_us = $2 WHERE name = $1",
        )
        .bind(&self.node)
        .bind(us(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every node with its open calls and leases.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let rows = sqlx::query(
            "SELECT n.name, n.state, n.heartbeat_us,
                (SELECT count(*) FROM cluster_attempts a WHERE a.node = n.name AND a.ended_us IS NULL),
                (SELECT count(*) FROM cluster_contacts c WHERE c.lease_node = n.name)
             FROM cluster_nodes n ORDER BY n.name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| NodeInfo {
                name: r.get(0),
                state: r.get(1),
                heartbeat: from_us(r.get(2)),
                open_calls: r.get(3),
                leases: r.get(4),
            })
            .collect())
    }

    /// The calls open now on every node, oldest first (the dashboard's merged live view).
    pub async fn live_calls(&self) -> Result<Vec<LiveCall>> {
        let rows = sqlx::query(
            "SELECT node, call_id, campaign, customer, started_us FROM cluster_attempts
             WHERE ended_us IS NULL ORDER BY started_us, id LIMIT 1000",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| LiveCall {
                node: r.get(0),
                call: r.get(1),
                campaign: r.get(2),
                customer: r.get(3),
                started: from_us(r.get(4)),
            })
            .collect())
    }

    /// Ended attempts per campaign, node and outcome over every node (the merged totals),
    /// from the rollup the database keeps as attempts end (no scan of the attempts).
    pub async fn outcomes(&self) -> Result<Vec<OutcomeCount>> {
        let rows = sqlx::query(
            "SELECT campaign, node, outcome, count FROM cluster_outcomes
             ORDER BY campaign, node, outcome",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| OutcomeCount {
                campaign: r.get(0),
                node: r.get(1),
                outcome: r.get(2),
                count: r.get(3),
            })
            .collect())
    }

    /// Every campaign with its shared limits and progress (pending and done are counters
    /// kept as contacts are queued and finished).
    pub async fn campaigns(&self) -> Result<Vec<CampaignInfo>> {
        let rows = sqlx::query(
            "SELECT k.id, k.name, k.state, k.in_flight, k.channels, k.cps, k.pending, k.done,
                k.updated_by, k.updated_us
             FROM cluster_campaigns k ORDER BY k.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| CampaignInfo {
                id: r.get(0),
                name: r.get(1),
                state: r.get(2),
                in_flight: r.get(3),
                channels: r.get(4),
                cps: r.get(5),
                pending: r.get(6),
                done: r.get(7),
                updated_by: r.get(8),
                updated: from_us(r.get(9)),
            })
            .collect())
    }

    /// Contacts of a campaign still pending (leased or not).
    pub async fn pending(&self, campaign: CampaignId) -> Result<u64> {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT pending FROM cluster_campaigns WHERE id = $1")
                .bind(campaign.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// The merged log of every node, in time order (ties in commit order).
    pub async fn events(&self) -> Result<Vec<Event>> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT event FROM cluster_events ORDER BY at_us, id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .enumerate()
            .map(|(i, e)| {
                serde_json::from_str(e).map_err(|err| {
                    ClusterError::Invalid(format!("cluster_events row {}: {err}", i + 1))
                })
            })
            .collect()
    }

    async fn append(&self, tx: &mut Transaction<'_, Postgres>, e: &Event) -> Result<()> {
        let json =
            serde_json::to_string(e).map_err(|err| ClusterError::Invalid(err.to_string()))?;
        // The notice goes out when the transaction commits (and never if it rolls back).
        sqlx::query(
            "WITH e AS (INSERT INTO cluster_events (at_us, node, event) VALUES ($1, $2, $3) RETURNING id)
             SELECT pg_notify($4, id::text) FROM e",
        )
        .bind(us(e.at))
        .bind(&self.node)
        .bind(json)
        .bind(EVENTS_CHANNEL)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Listens to the merged log as it grows (its own connection, outside the pool).
    pub async fn event_listener(&self) -> Result<EventListener> {
        Ok(EventListener(self.listener(EVENTS_CHANNEL).await?))
    }

    /// Up to `max` events of the merged log with ids above `after`, oldest first, with the
    /// node that appended each (a live stream's catch-up after a notice).
    pub async fn events_after(&self, after: i64, max: u32) -> Result<Vec<LoggedEvent>> {
        let rows = sqlx::query(
            "SELECT id, node, event FROM cluster_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(max as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let id: i64 = r.get(0);
                let event = serde_json::from_str(r.get::<&str, _>(2)).map_err(|err| {
                    ClusterError::Invalid(format!("cluster_events row {id}: {err}"))
                })?;
                Ok(LoggedEvent {
                    id,
                    node: r.get(1),
                    event,
                })
            })
            .collect()
    }

    /// The id of the newest event of the merged log (0 when it is empty).
    pub async fn last_event_id(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM cluster_events")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// KPI cells of every node per UTC day for events in `[from, to)` at hour resolution,
    /// from the rollup the merged log's trigger keeps (`0003_kpi_rollup.sql`); the same rows a
    /// node's own store gives, so one fold makes both reports.
    pub async fn kpi_rollup(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        campaign: Option<CampaignId>,
    ) -> Result<Vec<waihu_core::kpi::KpiRow>> {
        let rows = sqlx::query(
            "SELECT hour_us / 86400000000 AS day, metric, key, sum(n)::bigint, sum(sum)
             FROM cluster_kpi_hourly
             WHERE hour_us >= $1 AND hour_us < $2 AND ($3::bigint IS NULL OR campaign = $3)
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .bind(us(from) / HOUR_US * HOUR_US)
        .bind(us(to) / HOUR_US * HOUR_US)
        .bind(campaign.map(|c| c.0))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| waihu_core::kpi::KpiRow {
                day: from_us(r.get::<i64, _>(0) * DAY_US).date_naive(),
                metric: r.get(1),
                key: r.get(2),
                n: r.get(3),
                sum: r.get(4),
            })
            .collect())
    }

    /// The newest UTC hour with a finished attempt on any node, if any.
    pub async fn kpi_last_hour(&self) -> Result<Option<DateTime<Utc>>> {
        let h: Option<i64> = sqlx::query_scalar(
            "SELECT max(hour_us) FROM cluster_kpi_hourly WHERE metric = 'attempt'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(h.map(from_us))
    }
}

const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;

/// An event of the merged log with where it came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoggedEvent {
    pub id: i64,
    pub node: String,
    pub event: Event,
}

/// Notices of events appended on any node, as their transactions commit.
pub struct EventListener(PgListener);

impl EventListener {
    /// The id of the next event committed. A malformed payload (not written by waihu) is
    /// skipped.
    pub async fn recv(&mut self) -> Result<i64> {
        loop {
            let n = self.0.recv().await?;
            if let Ok(id) = n.payload().parse() {
                return Ok(id);
            }
        }
    }
}

/// Campaign-state changes as they are committed on any node.
pub struct ControlListener(PgListener);

impl ControlListener {
    /// The next change. A malformed payload (not written by waihu) is skipped.
    pub async fn recv(&mut self) -> Result<Control> {
        loop {
            let n = self.0.recv().await?;
            if let Some((id, state)) = n.payload().split_once(':') {
                if let Ok(id) = id.parse() {
                    return Ok(Control {
                        campaign: CampaignId(id),
                        state: state.to_string(),
                    });
                }
            }
        }
    }
}
