//! SMPP 3.4 for waihu's follow-up SMS: a client that binds as transceiver, submits (long
//! texts concatenated by UDH or carried in `message_payload`), and receives delivery
//! receipts and mobile-originated replies.
//!
//! - [`pdu`]: the wire codec (never panics on input; property-tested).
//! - [`text`]: GSM 7-bit vs UCS-2 and segment counting.
//! - [`receipt`]: the `id:… stat:DELIVRD …` receipt format.
//! - [`session`]: the sans-IO client state machine (window, sequence numbers, timeouts as
//!   `now` inputs). It never reads the clock or touches a socket.
//! - [`driver`]: the tokio task that owns the TCP connection, feeds the session and
//!   reconnects (`waihu-smsc-client`'s, shared with CMPP, as is the session's window of
//!   submissions in flight).
//! - [`peer`]: a small SMSC built on Debian's Net::SMPP (`libnet-smpp-perl`), used by the
//!   tests and `waihu bench sms` as a real peer on 127.0.0.1.
//!
//! The driver's loop, in short:
//!
//! ```text
//! session.connect(now, wall_clock)
//! loop {
//!     write every session.poll_transmit()
//!     hand every session.poll_event() to the application
//!     select { bytes = socket.read() => session.handle_input(now, bytes),
//!              sms = commands.recv() => session.submit(now, sms),
//!              _ = sleep_until(session.poll_timeout()) => session.handle_timeout(now) }
//! }
//! ```

pub mod driver;
pub mod pdu;
pub mod peer;
pub mod receipt;
pub mod session;
pub mod text;

pub use driver::{spawn, ClientConfig, SmppHandle};
pub use receipt::{Receipt, ReceiptState};
pub use session::{Config, Event, Failure, LongMode, OutgoingSms, Session, SubmitId};
