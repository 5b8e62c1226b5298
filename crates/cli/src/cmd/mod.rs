//! One module per top-level subcommand. Each parses its arguments, calls the
//! library crates and prints; none holds business logic.
pub mod amd;
pub mod analytics;
pub mod audit;
pub mod bench;
pub mod call;
pub mod campaign;
pub mod cluster;
pub mod compliance;
pub mod customers;
pub mod demo;
pub mod dnc;
pub mod events;
pub mod geo;
pub mod keys;
pub mod live;
pub mod llm;
pub mod messages;
pub mod nlu;
pub mod script;
pub mod segments;
pub mod serve;
pub mod sim;
pub mod speech;
pub mod trunks;
pub mod user;
pub mod voiceprint;
