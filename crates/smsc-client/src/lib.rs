//! What waihu's SMS gateway clients (`waihu-smpp`, `waihu-cmpp`) have in common once their
//! wire formats are set aside: both keep a window of submissions in flight over one TCP
//! connection, and both need a task that owns that connection and reconnects.
//!
//! - [`window`]: the sans-IO table of submissions — parts queued and sent while the window
//!   has room, sequence numbers, response deadlines, which submission each answer settles,
//!   what a lost link leaves unknown — and [`window::MoParts`], the reassembly of
//!   mobile-originated texts that came in parts. No clock, no socket.
//! - [`driver`]: the tokio task, generic over a protocol session ([`driver::ClientSession`]):
//!   the command channel and its cloneable [`driver::Handle`], the reconnect loop, and the
//!   select over socket, commands and the session's timer.
//!
//! The codecs, handshakes and event types stay in the protocol crates: the two protocols
//! share no framing, field or login.

pub mod driver;
pub mod window;

pub use driver::{spawn, ClientConfig, ClientSession, DriverEvent, Handle, SubmitError};
pub use window::{MoParts, Request, Settled, SubmitId, Window};
