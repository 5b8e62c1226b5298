//! RFC 3263 resolution of a SIP next hop: NAPTR → SRV → A/AAAA.
//!
//! [`select`] is the sans-IO core: which lookups a host calls for ([`select::plan`]: an IP
//! literal or an explicit port → A/AAAA only; an explicit transport → that transport's
//! SRV; else NAPTR, else SRV per supported transport, else A/AAAA on 5060/UDP), which
//! NAPTR records a client follows ([`select::select_naptr`]), and the RFC 2782 order of
//! SRV records ([`select::order_srv`]: priority ascending, weighted random within a
//! priority, the randomness a seed). [`Resolved::targets`] flattens what was found into
//! the ordered list of places to try, each with the record chain that led to it.
//!
//! [`dns::Resolver`] is the I/O half (hickory-resolver on tokio): the system's resolver
//! or one given DNS server (`WAIHU_DNS_SERVER`, a trunk's `dns_server`).
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use waihu_resolve::{dns::Resolver, Transport};
//! let r = Resolver::new(Some("127.0.0.1:5353".parse()?))?;
//! let found = r.resolve("carrier.example", None, None, &Transport::ALL).await?;
//! for t in found.targets(42) {
//!     println!("{} {}", t.transport, t.addr);
//! }
//! # Ok(()) }
//! ```

pub mod dns;
pub mod select;

pub use select::{Resolved, Step, Target, Transport};
