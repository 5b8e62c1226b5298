//! The tokio side: `waihu-smsc-client`'s driver task owns the TCP connection to the gateway
//! (ISMG), feeds the sans-IO [`Session`], writes what it asks, forwards its events, and
//! reconnects (after `reconnect_delay`) whenever the connection ends. Submissions queued
//! while the link is down go out after the next CONNECT. The task reads the wall clock for
//! the CONNECT timestamp, which the session puts in China Standard Time (UTC+8), the clock
//! CMPP gateways check it against.

use crate::session::{Config, Event, Session};

pub use crate::session::china_timestamp;
pub use waihu_smsc_client::SubmitError;

/// The gateway's address (`host:port`), the session's settings and the reconnect timing.
pub type ClientConfig = waihu_smsc_client::ClientConfig<Config>;
/// What the driver reports: the session's events and failed connection attempts.
pub type DriverEvent = waihu_smsc_client::DriverEvent<Event>;
/// Talks to the driver task. Cloneable; the task stops on `shutdown` (after a TERMINATE)
/// or when every handle is dropped.
pub type CmppHandle = waihu_smsc_client::Handle<Session>;

/// Starts the driver task. Events (session events and connection failures) arrive on the
/// returned receiver; the receiver must be drained.
pub fn spawn(
    cfg: ClientConfig,
) -> (
    CmppHandle,
    tokio::sync::mpsc::UnboundedReceiver<DriverEvent>,
) {
    waihu_smsc_client::spawn(cfg)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_china_time() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-31T17:30:05Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(super::china_timestamp(t), 101013005);
    }
}
