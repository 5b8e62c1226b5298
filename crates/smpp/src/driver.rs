//! The tokio side: `waihu-smsc-client`'s driver task owns the TCP connection to the SMSC,
//! feeds the sans-IO [`Session`], writes what it asks, forwards its events, and reconnects
//! (after `reconnect_delay`) whenever the bind ends. Submissions queued while the link is
//! down go out after the next bind.

use crate::session::{Config, Event, Session};

pub use waihu_smsc_client::SubmitError;

/// The SMSC's address (`host:port`), the session's settings and the reconnect timing.
pub type ClientConfig = waihu_smsc_client::ClientConfig<Config>;
/// What the driver reports: the session's events and failed connection attempts.
pub type DriverEvent = waihu_smsc_client::DriverEvent<Event>;
/// Talks to the driver task. Cloneable; the task stops on `shutdown` (after an unbind) or
/// when every handle is dropped.
pub type SmppHandle = waihu_smsc_client::Handle<Session>;

/// Starts the driver task. Events (session events and connection failures) arrive on the
/// returned receiver; the receiver must be drained.
pub fn spawn(
    cfg: ClientConfig,
) -> (
    SmppHandle,
    tokio::sync::mpsc::UnboundedReceiver<DriverEvent>,
) {
    waihu_smsc_client::spawn(cfg)
}
