//! waihu as the registrar of its agents' softphones (`register:` in the agents
//! file): the registrar is built from the file (passwords read from the
//! environment or secrets files here, at start) and attached to the run's SIP
//! endpoint; at offer time the transfer task asks the endpoint for each
//! registering agent's live contact ([`contacts`]).
use std::collections::HashMap;

use waihu_acd::{Config, PasswordSource};
use waihu_engine::sip::SipEndpoint;
use waihu_engine::waihu_sip::auth::Algorithm;
use waihu_engine::waihu_sip::{Registrar, RegistrarConfig, Secret};

/// The registrar for `cfg`'s registering agents; `None` when no agent
/// registers. A password that cannot be read is an error naming the agent and
/// its source (never the password).
pub fn registrar_for(cfg: &Config) -> Result<Option<Registrar>, String> {
    if !cfg.any_registers() {
        return Ok(None);
    }
    let spec = cfg.registrar();
    let mut users = Vec::new();
    for a in &cfg.agents {
        let Some(r) = &a.register else { continue };
        let password = match r.source() {
            Some(PasswordSource::Env(v)) => std::env::var(&v).map_err(|_| {
                format!(
                    "agent {}: environment variable {v} (register.password_env) is not set / 环境变量 {v} 未设置",
                    a.id
                )
            })?,
            Some(PasswordSource::File(p)) => std::fs::read_to_string(&p)
                .map(|s| s.lines().next().unwrap_or("").to_string())
                .map_err(|e| {
                    format!(
                        "agent {}: register.password_file {}: {e} / 无法读取密码文件",
                        a.id,
                        p.display()
                    )
                })?,
            None => return Err(format!("agent {}: register needs password_env or password_file", a.id)),
        };
        if password.is_empty() {
            return Err(format!(
                "agent {}: the register password is empty / 密码为空",
                a.id
            ));
        }
        users.push((r.user.clone(), Secret::Password(password)));
    }
    let algorithms = spec
        .algorithms
        .iter()
        .filter_map(|a| match a.to_ascii_uppercase().as_str() {
            "SHA-256" => Some(Algorithm::Sha256),
            "MD5" => Some(Algorithm::Md5),
            _ => None,
        })
        .collect();
    let rc = RegistrarConfig {
        realm: spec.realm,
        min_expires: spec.min_expires_s,
        max_expires: spec.max_expires_s,
        default_expires: spec.max_expires_s,
        algorithms,
        ..RegistrarConfig::default()
    };
    // A fresh nonce key per run: nonces of an earlier run are not ours.
    let secret: [u8; 32] = rand::random();
    Ok(Some(Registrar::new(rc, secret, users)))
}

/// Agent id → the contact to call now, for every registering agent with a
/// live registration (the most recent binding).
pub async fn contacts(
    ep: &SipEndpoint,
    registrations: &[(String, String)],
) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (agent, user) in registrations {
        if let Ok(b) = ep.registered_contacts(user).await {
            if let Some(first) = b.into_iter().next() {
                out.insert(agent.clone(), first.contact);
            }
        }
    }
    out
}
