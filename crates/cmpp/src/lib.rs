//! CMPP 2.0 (China Mobile Peer to Peer) for waihu's follow-up SMS: the protocol Chinese
//! carriers' SMS gateways (ISMG) speak to service providers. A client that connects with
//! the MD5 authenticator, submits (long texts in parts with a UDH), and receives status
//! reports and replies from handsets (DELIVER).
//!
//! - [`pdu`]: the wire codec (never panics on input; property-tested).
//! - [`auth`]: AuthenticatorSource / AuthenticatorISMG and the `MMDDHHMMSS` timestamp.
//! - [`text`]: ASCII vs UCS-2 content, 140-octet messages and 134-octet parts.
//! - [`session`]: the sans-IO client state machine (window, sequence ids, ACTIVE_TEST and
//!   response timeouts from `now` inputs). It never reads the clock or touches a socket.
//! - [`driver`]: the tokio task that owns the TCP connection and reconnects
//!   (`waihu-smsc-client`'s, shared with SMPP).
//! - [`peer`]: a gateway on 127.0.0.1 for tests, reading the wire by the spec's offsets.
//!
//! It is its own crate rather than a module of `waihu-smpp`: CMPP shares no framing, field
//! or handshake with SMPP (fixed-width fields, MD5 login, 64-bit Msg_Ids, reports inside
//! DELIVER); only the idea of a windowed session is common, and that lives in
//! `waihu-smsc-client` (the window of submissions and the driver task), shared with SMPP.
//!
//! The driver's loop, in short:
//!
//! ```text
//! session.connect(now, wall_clock)  // CONNECT stamped in China Standard Time
//! loop {
//!     write every session.poll_transmit()
//!     hand every session.poll_event() to the application
//!     select { bytes = socket.read() => session.handle_input(now, bytes),
//!              sms = commands.recv() => session.submit(now, sms),
//!              _ = sleep_until(session.poll_timeout()) => session.handle_timeout(now) }
//! }
//! ```

pub mod auth;
pub mod driver;
pub mod pdu;
pub mod peer;
pub mod session;
pub mod text;

pub use driver::{spawn, ClientConfig, CmppHandle, DriverEvent};
pub use session::{Config, Event, Failure, OutgoingSms, Session, SubmitId};
