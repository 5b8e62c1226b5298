//! PostgreSQL on loopback for a test: `initdb` into a temporary directory (Debian's
//! `postgresql` package, binaries under `/usr/lib/postgresql/<version>/bin`), the server on a
//! free port of 127.0.0.1 with durability switched off (a test's data dies with it), trust
//! authentication for the user `waihu`. Nothing is assumed already running.
//!
//! PostgreSQL refuses to run as root; as root the server runs as the `postgres` system user
//! (created by the package) through `runuser`, and the directory is handed to that user.
//!
//! ```no_run
//! let dir = std::env::temp_dir().join("pg-example");
//! if let Some(pg) = waihu_testkit::postgres::Postgres::start_or_skip(&dir) {
//!     let url = pg.url("postgres");
//!     // ... connect ...
//! }
//! ```
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Peer;

/// A running PostgreSQL server; stopped (fast shutdown, then SIGKILL) when dropped.
pub struct Postgres {
    pub port: u16,
    data: PathBuf,
    peer: Option<Peer>,
}

/// Where a PostgreSQL binary is: on `PATH`, else the newest `/usr/lib/postgresql/*/bin`.
pub fn bin(name: &str) -> Option<PathBuf> {
    if let Some(p) = crate::find_on_path(name, std::env::var_os("PATH").as_deref()) {
        return Some(p);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let p = e.path().join("bin").join(name);
            p.exists().then_some((v, p))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

fn is_root() -> bool {
    // The real uid, from /proc (no libc dependency here).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// Starts a server in `dir` (created; must not hold an older cluster), or, without the
    /// PostgreSQL binaries, skips the test (`None`) or fails under CI (see [`crate::have_peer`]).
    #[track_caller]
    pub fn start_or_skip(dir: &Path) -> Option<Postgres> {
        let found = bin("initdb").is_some() && bin("postgres").is_some();
        if !crate::decide("postgres", found) {
            return None;
        }
        Some(Postgres::start(dir).unwrap_or_else(|e| panic!("starting PostgreSQL: {e}")))
    }

    pub fn start(dir: &Path) -> std::io::Result<Postgres> {
        let initdb = bin("initdb").ok_or_else(|| std::io::Error::other("initdb not found"))?;
        let postgres =
            bin("postgres").ok_or_else(|| std::io::Error::other("postgres not found"))?;
        std::fs::create_dir_all(dir)?;
        let data = dir.join("pgdata");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir)
                .status()?
                .success();
            if !ok {
                return Err(std::io::Error::other(format!(
                    "chown postgres {}",
                    dir.display()
                )));
            }
        }
        let out = command(&initdb)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "waihu",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "initdb: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let port = crate::kannel::free_port()?;
        let log = std::fs::File::create(dir.join("postgres.log"))?;
        if is_root() {
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.join("postgres.log"))
                .status();
        }
        let child = command(&postgres)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=128MB",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let pg = Postgres {
            port,
            data,
            peer: Some(Peer(child)),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && pg.data.join("postmaster.pid").exists()
            {
                // Listening; the startup process may still be replaying, so ask pg_isready
                // when it is there, else give it a moment.
                match bin("pg_isready") {
                    Some(ready) => {
                        let ok = Command::new(ready)
                            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "waihu"])
                            .stdout(Stdio::null())
                            .status()
                            .map(|s| s.success())
                            .unwrap_or(false);
                        if ok {
                            return Ok(pg);
                        }
                    }
                    None => {
                        std::thread::sleep(Duration::from_millis(200));
                        return Ok(pg);
                    }
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
                return Err(std::io::Error::other(format!(
                    "PostgreSQL did not start on port {port}: {log}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `postgres://waihu@127.0.0.1:PORT/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://waihu@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database (with `createdb`'s SQL through `psql`) and returns its URL.
    pub fn create_database(&self, name: &str) -> std::io::Result<String> {
        let psql = bin("psql").ok_or_else(|| std::io::Error::other("psql not found"))?;
        let out = Command::new(psql)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "waihu",
            ])
            .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE \"{name}\""))
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "CREATE DATABASE {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(self.url(name))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Fast shutdown (SIGINT to the postmaster: abort sessions, checkpoint, exit); the
        // postmaster's pid is the first line of postmaster.pid. Peer's drop kills what is left.
        if let Some(pid) = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string))
        {
            let _ = Command::new("kill")
                .args(["-INT", pid.trim()])
                .stderr(Stdio::null())
                .status();
            for _ in 0..100 {
                if !self.data.join("postmaster.pid").exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.peer.take();
    }
}
