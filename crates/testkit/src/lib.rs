//! Test support shared by the workspace's test crates.
//!
//! Some tests drive a real external peer (SIPp, baresip, Kamailio, Chromium). A developer
//! without the peer should still be able to run the rest of the suite, but CI must never
//! pass a test that did not run. So [`have_peer`] decides:
//!
//! - peer found: `true`, the test runs;
//! - peer missing and the `CI` environment variable set (non-empty, not `false` or `0`):
//!   panic with `peer '<name>' missing: install it with scripts/setup.sh`;
//! - peer missing elsewhere: print `SKIPPED: <test>: peer '<name>' not found` to stderr
//!   (past the test harness's output capture, so it shows in a normal `cargo test` run)
//!   and return `false`; the test returns early.
//!
//! ```no_run
//! #[test]
//! fn against_sipp() {
//!     if !waihu_testkit::have_peer("sipp") {
//!         return;
//!     }
//!     // ... start sipp ...
//! }
//! ```
//!
//! [`kamailio`] starts Kamailio as a registrar and authenticating proxy (one
//! configuration for the engine's and the CLI's peer tests and `waihu bench trunks`);
//! [`dnsmasq`] a loopback DNS server with NAPTR/SRV/A records (trunk resolution tests);
//! [`flood`] hostile SIP traffic (INVITE and OPTIONS floods, garbage, held TCP
//! connections) from distinct loopback addresses;
//! [`kannel`] Kannel's bearerbox + smsbox as an SMS gateway in front of a test's SMSC;
//! [`postgres`] a PostgreSQL server initialised into a temporary directory.
//!
//! *Invariant:* no dependencies; a dev-dependency of test crates, and a dependency of
//! `waihu-bench` only, whose benchmarks start the same peers.

pub mod baresip;
pub mod dnsmasq;
pub mod edge;
pub mod flood;
pub mod kamailio;
pub mod kannel;
pub mod postgres;
pub mod signal;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A peer process the test started, stopped when dropped so a failing test
/// leaves nothing behind: SIGTERM to its children and to it, SIGKILL to what
/// lingers after 2 s (Kamailio's workers would otherwise outlive a killed main
/// process).
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let signal = |sig: &str| {
            let _ = Command::new("pkill")
                .args([sig, "-P", &pid])
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM");
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status();
        for _ in 0..40 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                signal("-KILL");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal("-KILL");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether an external program the test needs is on `PATH`. See the crate docs for what
/// happens when it is not; a CI failure points at the caller's line.
#[track_caller]
pub fn have_peer(peer: &str) -> bool {
    decide(
        peer,
        find_on_path(peer, std::env::var_os("PATH").as_deref()).is_some(),
    )
}

/// Like [`have_peer`] for a peer expected at a fixed path (e.g. `/usr/bin/chromium`).
#[track_caller]
pub fn have_peer_at(peer: &str, path: &Path) -> bool {
    decide(peer, path.exists())
}

/// Where the speech models are installed (`scripts/deps/speech.sh`): `WAIHU_MODELS_DIR`,
/// else `$XDG_DATA_HOME/waihu/models`, else `~/.local/share/waihu/models` — the same
/// default the binary uses, for tests that run it or load the models themselves.
pub fn models_dir() -> PathBuf {
    std::env::var_os("WAIHU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let data = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".local/share")
                });
            data.join("waihu/models")
        })
}

/// Whether this run is in CI: `CI` set, non-empty and not `false` or `0` (the convention
/// of GitHub Actions, GitLab CI and most others, which set `CI=true`).
pub fn in_ci() -> bool {
    ci_value_means_ci(std::env::var("CI").ok().as_deref())
}

fn ci_value_means_ci(value: Option<&str>) -> bool {
    match value.map(str::trim) {
        None | Some("") => false,
        Some(v) => !(v.eq_ignore_ascii_case("false") || v == "0"),
    }
}

#[track_caller]
fn decide(peer: &str, found: bool) -> bool {
    if found {
        return true;
    }
    if in_ci() {
        panic!("peer '{peer}' missing: install it with scripts/setup.sh");
    }
    // Straight to the process's stderr: `eprintln!` inside a test is captured and only
    // shown when the test fails, and a skipped test passes.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {}: peer '{peer}' not found",
        current_test()
    );
    false
}

/// The running test's name: the test harness names each test's thread after it.
fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("(unnamed test)")
        .to_string()
}

/// The first executable file called `name` in the directories of `path` (a `PATH` value).
fn find_on_path(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_values() {
        for v in ["true", "1", "yes", "TRUE"] {
            assert!(ci_value_means_ci(Some(v)), "{v}");
        }
        for v in [
            None,
            Some(""),
            Some("false"),
            Some("False"),
            Some("0"),
            Some(" "),
        ] {
            assert!(!ci_value_means_ci(v), "{v:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn finds_executables_on_path_only() {
        let path = std::env::join_paths(["/nonexistent", "/bin", "/usr/bin"]).unwrap();
        assert!(find_on_path("sh", Some(&path)).is_some());
        assert!(find_on_path("surely-no-such-program-here", Some(&path)).is_none());
        assert!(find_on_path("sh", None).is_none());
    }

    #[test]
    fn thread_name_is_the_test_name() {
        assert!(current_test().ends_with("thread_name_is_the_test_name"));
    }
}
