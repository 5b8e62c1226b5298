//! SIP user agent (RFC 3261), digest auth (RFC 2617/7616/8760) and SDP offer/answer
//! (RFC 3264/4566). **Sans-IO**: this crate never reads a clock, never touches a socket and
//! never spawns. Time is an input (`now: Instant`), received bytes are an input, and the
//! outputs are bytes to send ([`Transmit`]), events ([`UaEvent`]) and the next instant the
//! state machine wants to be woken ([`UserAgent::poll_timeout`]). The runtime that owns the
//! sockets (crate `waihu-engine`) is a small loop around it, so tests drive two agents
//! against each other in virtual time, with packet loss, faster than real time.
//!
//! # Run loop
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use waihu_sip::{Config, OutgoingCall, Transport, UaEvent, UserAgent};
//!
//! # fn recv_from_socket(_d: Duration) -> Option<(std::net::SocketAddr, Transport, Vec<u8>)> { None }
//! # fn send_to_socket(_t: &waihu_sip::Transmit) {}
//! let mut ua = UserAgent::new(Config::new("127.0.0.1:5060".parse().unwrap(), "waihu"), 42);
//! let call = ua
//!     .invite(Instant::now(), OutgoingCall::new("sip:bob@127.0.0.1:5062"))
//!     .expect("valid target");
//! loop {
//!     // 1. Drain everything the agent wants to send and tell.
//!     while let Some(t) = ua.poll_transmit() {
//!         send_to_socket(&t);
//!     }
//!     while let Some(ev) = ua.poll_event() {
//!         if let UaEvent::Terminated { outcome, .. } = ev {
//!             println!("{call:?} ended: {outcome:?}");
//!             return;
//!         }
//!     }
//!     // 2. Sleep until a datagram arrives or the next timer is due.
//!     let now = Instant::now();
//!     let wait = ua.poll_timeout().map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now));
//!     match recv_from_socket(wait) {
//!         Some((from, transport, bytes)) => ua.handle_input(Instant::now(), from, transport, &bytes),
//!         None => ua.handle_timeout(Instant::now()),
//!     }
//! }
//! ```
//!
//! Over TCP the runtime splits the byte stream into messages with [`StreamFramer`]
//! (Content-Length framing) and then calls [`UserAgent::handle_input`] per message.
//!
//! # Modules
//! - [`msg`]: a tolerant SIP message parser/serialiser (compact and folded headers,
//!   case-insensitive names, comma-joined Via, quoted strings, parameters) plus the TCP framer.
//! - [`sdp`]: SDP parse/serialise and the offer/answer for PCMU, PCMA and telephone-event,
//!   with SDES-SRTP keys (RFC 4568 `a=crypto`).
//! - [`auth`]: digest authentication (MD5, SHA-256, `-sess`, qop=auth), client side.
//! - [`registrar`]: a registrar (RFC 3261 §10.3) with digest authentication, server side;
//!   attached to a [`UserAgent`] with [`UserAgent::set_registrar`] it answers REGISTER.
//! - [`guard`]: per-source limits on new requests, 503 with Retry-After, muting of garbage
//!   senders, and one report per flood.
//! - [`ua`]: transactions (timers A–K), dialogs, calls and registrations.

pub mod auth;
pub mod guard;
pub mod msg;
pub mod registrar;
pub mod sdp;
pub mod trunk;
pub mod ua;

pub use guard::{FloodPhase, FloodReport, GuardConfig, GuardStats};
pub use msg::{FrameError, Headers, Message, ParseError, Request, Response, StreamFramer};
pub use registrar::{Binding, Registrar, RegistrarConfig, Reply as RegistrarReply, Secret};
pub use sdp::{Codec, Direction, MediaDesc, Negotiated, SdesKey, Sdp, SdpError, SrtpMode};
pub use trunk::{TrunkAddr, TrunkAddrError};
pub use ua::{
    outcome_for_status, register_retry_delay, CallId, Config, Credentials, OutgoingCall, RegId,
    Registration, SipError, Timers, TransferProgress, Transmit, Transport, UaEvent, UserAgent,
};
