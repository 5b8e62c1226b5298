//! `waihu user ...`: user accounts for signing in to the dashboard and console
//! (`/login`). Passwords come from `WAIHU_PASSWORD` or the first line of
//! standard input, never from the command line (shell history, `ps`).
use std::io::BufRead;

use anyhow::Context;
use chrono::Utc;
use waihu_accounts::{password, totp};

use crate::ctx::{print_json, Ctx};

/// Where a password is read from.
pub const PASSWORD_ENV: &str = "WAIHU_PASSWORD";

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Create a user (password from WAIHU_PASSWORD or stdin, at least 10 characters). 新建用户。
    Add {
        name: String,
        #[arg(long, value_parser = ["admin", "supervisor", "operator", "analyst"])]
        role: String,
    },
    /// List users (never their passwords or secrets). 用户列表。
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set a new password (WAIHU_PASSWORD or stdin); the user's sessions end. 修改密码。
    Passwd { name: String },
    /// Enrol in TOTP (prints the otpauth:// URI and the base32 secret), or `--off`. 动态码。
    Totp {
        name: String,
        /// Remove TOTP: the password alone signs in again.
        #[arg(long)]
        off: bool,
    },
    /// Disable a user: it cannot sign in and its sessions end. 停用用户。
    Disable { name: String },
    /// Enable a disabled user again. 启用用户。
    Enable { name: String },
    /// Clear a lock-out (5 failed sign-ins in a row) before it runs out. 解除锁定。
    Unlock { name: String },
}

/// The new password: `WAIHU_PASSWORD`, else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    let pw = match std::env::var(PASSWORD_ENV) {
        Ok(p) => p,
        Err(_) => {
            eprintln!(
                "waihu: 请输入密码 / enter the password (one line on stdin; or set {PASSWORD_ENV})"
            );
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    password::check_new(&pw).map_err(|e| anyhow::anyhow!("password: {e}"))?;
    Ok(pw)
}

fn no_user(name: &str) -> anyhow::Error {
    anyhow::anyhow!("user: no user '{name}' (see `waihu user list`)")
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    // Read before opening the store, so a short password fails fast.
    let pw = match &cmd {
        Cmd::Add { name, .. } => {
            waihu_store::check_user_name(name).map_err(|e| anyhow::anyhow!("user: {e}"))?;
            Some(read_password()?)
        }
        Cmd::Passwd { .. } => Some(read_password()?),
        _ => None,
    };
    let hash = match pw {
        Some(p) => Some(password::hash(&p).map_err(|e| anyhow::anyhow!("password: {e}"))?),
        None => None,
    };
    ctx.runtime()?.block_on(async {
        let store = ctx.store().await?;
        let now = Utc::now();
        match cmd {
            Cmd::Add { name, role } => {
                let u = store
                    .user_insert(&name, &role, hash.as_deref().unwrap_or_default(), now)
                    .await
                    .map_err(|e| anyhow::anyhow!("user add: {e}"))?;
                println!("created user {} ({}); sign in at /login", u.name, u.role);
            }
            Cmd::List { json } => {
                for u in store.users().await? {
                    if json {
                        print_json(&u)?;
                    } else {
                        let mut flags = Vec::new();
                        if u.disabled {
                            flags.push("disabled".to_string());
                        }
                        if u.totp {
                            flags.push("totp".to_string());
                        }
                        if let Some(l) = u.locked_until.filter(|l| *l > now) {
                            flags.push(format!("locked until {}", l.format("%Y-%m-%d %H:%M:%S UTC")));
                        }
                        println!(
                            "{:<24} {:<10} {} {}",
                            u.name,
                            u.role,
                            u.created_at.format("%Y-%m-%d %H:%M"),
                            flags.join(", ")
                        );
                    }
                }
            }
            Cmd::Passwd { name } => {
                if !store
                    .user_set_password(&name, hash.as_deref().unwrap_or_default(), now)
                    .await?
                {
                    return Err(no_user(&name));
                }
                println!("password of {name} changed; its sessions have ended");
            }
            Cmd::Totp { name, off: true } => {
                if !store.user_set_totp(&name, None, now).await? {
                    return Err(no_user(&name));
                }
                println!("TOTP removed for {name}: the password alone signs in");
            }
            Cmd::Totp { name, off: false } => {
                let secret = totp::new_secret();
                if !store.user_set_totp(&name, Some(&secret), now).await? {
                    return Err(no_user(&name));
                }
                println!("{}", totp::otpauth_uri(&secret, "waihu", &name));
                println!("secret (base32): {}", totp::secret_base32(&secret));
                eprintln!("waihu: 用身份验证器扫描或输入以上密钥；之后登录需要 6 位动态码 / add it to an authenticator app; signing in now asks for its 6-digit code");
            }
            Cmd::Disable { name } => {
                if !store.user_set_disabled(&name, true, now).await? {
                    return Err(no_user(&name));
                }
                println!("disabled {name}; its sessions have ended");
            }
            Cmd::Enable { name } => {
                if !store.user_set_disabled(&name, false, now).await? {
                    return Err(no_user(&name));
                }
                println!("enabled {name}");
            }
            Cmd::Unlock { name } => {
                if !store.user_unlock(&name, now).await? {
                    return Err(no_user(&name));
                }
                println!("unlocked {name}");
            }
        }
        store.close().await;
        Ok(())
    })
}
