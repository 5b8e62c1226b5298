//! User accounts and their sign-in sessions (migration 0016). The store keeps
//! state; what it means (a password matches, a code is fresh, an account is
//! locked, a session has expired) is decided by `waihu-accounts`. Passwords
//! arrive hashed (argon2id PHC strings), session tokens as SHA-256 digests;
//! TOTP secrets and CSRF tokens are sealed by the vault.
use chrono::{DateTime, Utc};
use serde::Serialize;
use waihu_core::Event;

use crate::events::insert_events;
use crate::{parse_ts, ts, Store, StoreError};

/// The longest user name.
pub const USER_NAME_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    /// `admin`, `supervisor`, `operator` or `analyst`.
    pub role: String,
    pub disabled: bool,
    /// Failed sign-ins in a row.
    pub failed_attempts: u32,
    pub locked_until: Option<DateTime<Utc>>,
    /// Enrolled in TOTP.
    pub totp: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user with what a sign-in checks.
#[derive(Debug, Clone)]
pub struct UserAuth {
    pub user: User,
    pub password_hash: String,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_last_step: Option<i64>,
}

/// A signed-in session and its user.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub user: User,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

const USER_COLS: &str = "id, name, role, disabled, failed_attempts, locked_until, totp_sealed IS NOT NULL, created_at, updated_at";

type UserRow = (
    i64,
    String,
    String,
    bool,
    i64,
    Option<String>,
    bool,
    String,
    String,
);

fn user_row(r: UserRow) -> Result<User, StoreError> {
    let (id, name, role, disabled, failed, locked, totp, created, updated) = r;
    let corrupt = |what: &str| StoreError::Corrupt {
        table: "users",
        id,
        reason: what.to_string(),
    };
    Ok(User {
        id,
        name,
        role,
        disabled,
        failed_attempts: u32::try_from(failed).map_err(|_| corrupt("failed_attempts"))?,
        locked_until: match locked {
            Some(l) => Some(parse_ts(&l).ok_or_else(|| corrupt("locked_until"))?),
            None => None,
        },
        totp,
        created_at: parse_ts(&created).ok_or_else(|| corrupt("created_at"))?,
        updated_at: parse_ts(&updated).ok_or_else(|| corrupt("updated_at"))?,
    })
}

/// Whether `name` may name a user: 1–64 characters, no spaces or control
/// characters, no `:` (actor names are `user:<name>`).
pub fn check_user_name(name: &str) -> Result<(), StoreError> {
    let n = name.chars().count();
    if n == 0 || n > USER_NAME_MAX {
        return Err(StoreError::Invalid(format!(
            "user name: 1 to {USER_NAME_MAX} characters, got {n}"
        )));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        return Err(StoreError::Invalid(format!(
            "user name '{}': no spaces, control characters or ':'",
            name.escape_default()
        )));
    }
    Ok(())
}

fn check_user_role(role: &str) -> Result<(), StoreError> {
    if ["admin", "supervisor", "operator", "analyst"].contains(&role) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "role '{role}': a user is admin, supervisor, operator or analyst (agents use agent keys)"
        )))
    }
}

impl Store {
    /// Create a user. Refused when the name is taken.
    pub async fn user_insert(
        &self,
        name: &str,
        role: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        check_user_name(name)?;
        check_user_role(role)?;
        let r = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(role)
        .bind(password_hash)
        .bind(ts(now))
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await?;
        let Some(id) = r else {
            return Err(StoreError::Invalid(format!("user '{name}' already exists")));
        };
        Ok(User {
            id,
            name: name.into(),
            role: role.into(),
            disabled: false,
            failed_attempts: 0,
            locked_until: None,
            totp: false,
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> =
            sqlx::query_as(&format!("SELECT {USER_COLS} FROM users ORDER BY name"))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(user_row).collect()
    }

    pub async fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> =
            sqlx::query_as(&format!("SELECT {USER_COLS} FROM users WHERE name = ?"))
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.map(user_row).transpose()
    }

    /// The user and what a sign-in checks (the TOTP secret opened).
    pub async fn user_auth(&self, name: &str) -> Result<Option<UserAuth>, StoreError> {
        let row: Option<(String, Option<Vec<u8>>, Option<i64>)> = sqlx::query_as(
            "SELECT password_hash, totp_sealed, totp_last_step FROM users WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some((password_hash, sealed, totp_last_step)) = row else {
            return Ok(None);
        };
        let Some(user) = self.user(name).await? else {
            return Ok(None);
        };
        let totp_secret = match sealed {
            Some(s) => Some(self.vault.open_bytes("users", "totp", name, &s)?),
            None => None,
        };
        Ok(Some(UserAuth {
            user,
            password_hash,
            totp_secret,
            totp_last_step,
        }))
    }

    async fn user_update(
        &self,
        sql: &str,
        name: &str,
        now: DateTime<Utc>,
        end_sessions: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = sqlx::query(sql)
            .bind(ts(now))
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 1 && end_sessions {
            sqlx::query(
                "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = ?)",
            )
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Set a new password hash; the user's sessions end. False: no such user.
    pub async fn user_set_password(
        &self,
        name: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?")
            .bind(password_hash)
            .bind(ts(now))
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = ?)")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Enrol (`Some(secret)`) or remove TOTP. A new secret forgets the last
    /// accepted step. False: no such user.
    pub async fn user_set_totp(
        &self,
        name: &str,
        secret: Option<&[u8]>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let sealed = secret.map(|s| self.vault.seal_bytes("users", "totp", name, s));
        let n = sqlx::query(
            "UPDATE users SET totp_sealed = ?, totp_last_step = NULL, updated_at = ? WHERE name = ?",
        )
        .bind(sealed)
        .bind(ts(now))
        .bind(name)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Disable (its sessions end) or enable a user. False: no such user.
    pub async fn user_set_disabled(
        &self,
        name: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let sql = if disabled {
            "UPDATE users SET disabled = 1, updated_at = ? WHERE name = ?"
        } else {
            "UPDATE users SET disabled = 0, updated_at = ? WHERE name = ?"
        };
        self.user_update(sql, name, now, disabled).await
    }

    /// Clear the failure count and any lock. False: no such user.
    pub async fn user_unlock(&self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.user_update(
            "UPDATE users SET failed_attempts = 0, locked_until = NULL, updated_at = ? WHERE name = ?",
            name,
            now,
            false,
        )
        .await
    }

    /// Record a refused sign-in of an existing user: its new failure count and
    /// lock, with `events`, in one transaction.
    pub async fn user_sign_in_failed(
        &self,
        user_id: i64,
        failed_attempts: u32,
        locked_until: Option<DateTime<Utc>>,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE users SET failed_attempts = ?, locked_until = ? WHERE id = ?")
            .bind(i64::from(failed_attempts))
            .bind(locked_until.map(ts))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        insert_events(&mut tx, &self.audit, events).await?;
        self.commit(tx).await
    }

    /// Record events of a sign-in that matched no user.
    pub async fn sign_in_events(&self, events: &[Event]) -> Result<(), StoreError> {
        self.append_events(events).await
    }

    /// A successful sign-in: the TOTP step it used becomes the last one (only if
    /// it is newer than the stored one: two requests racing with one code get
    /// one session), failures reset, the session row and `event` written in one
    /// transaction. False: the code was used meanwhile (nothing written).
    #[allow(clippy::too_many_arguments)]
    pub async fn user_signed_in(
        &self,
        user_id: i64,
        totp_step: Option<i64>,
        token_sha256: &str,
        csrf: &str,
        now: DateTime<Utc>,
        event: &Event,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(step) = totp_step {
            let n = sqlx::query(
                "UPDATE users SET totp_last_step = ? WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)",
            )
            .bind(step)
            .bind(user_id)
            .bind(step)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Ok(false);
            }
        }
        sqlx::query("UPDATE users SET failed_attempts = 0, locked_until = NULL WHERE id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let csrf_sealed = self.vault.seal("sessions", "csrf", token_sha256, csrf);
        sqlx::query(
            "INSERT INTO sessions (token_sha256, user_id, csrf_sealed, created_at, last_seen) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(token_sha256)
        .bind(user_id)
        .bind(csrf_sealed)
        .bind(ts(now))
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        insert_events(&mut tx, &self.audit, std::slice::from_ref(event)).await?;
        self.commit(tx).await?;
        Ok(true)
    }

    /// The session with this token digest and its user.
    pub async fn session(&self, token_sha256: &str) -> Result<Option<Session>, StoreError> {
        let row: Option<(i64, String, Vec<u8>, String, String)> = sqlx::query_as(
            "SELECT s.id, u.name, s.csrf_sealed, s.created_at, s.last_seen FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_sha256 = ?",
        )
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id, name, csrf_sealed, created, last_seen)) = row else {
            return Ok(None);
        };
        let corrupt = |what: &str| StoreError::Corrupt {
            table: "sessions",
            id,
            reason: what.to_string(),
        };
        let Some(user) = self.user(&name).await? else {
            return Ok(None);
        };
        Ok(Some(Session {
            id,
            user,
            csrf: self
                .vault
                .open("sessions", "csrf", token_sha256, &csrf_sealed)?,
            created_at: parse_ts(&created).ok_or_else(|| corrupt("created_at"))?,
            last_seen: parse_ts(&last_seen).ok_or_else(|| corrupt("last_seen"))?,
        }))
    }

    /// The session was used at `now`.
    pub async fn session_touch(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen = ? WHERE id = ? AND last_seen < ?")
            .bind(ts(now))
            .bind(id)
            .bind(ts(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// End a session (sign-out or expiry), appending `events` with it. False:
    /// there was no such session.
    pub async fn session_end(&self, id: i64, events: &[Event]) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 1 {
            insert_events(&mut tx, &self.audit, events).await?;
        }
        self.commit(tx).await?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use waihu_core::EventKind;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_with_key(dir.path(), &waihu_privacy::MasterKey::from_bytes([9; 32]))
            .await
            .unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn users_sessions_and_totp_steps() {
        let (_d, s) = store().await;
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let u = s
            .user_insert("li", "supervisor", "$argon2id$x", now)
            .await
            .unwrap();
        assert!(s
            .user_insert("li", "admin", "$argon2id$y", now)
            .await
            .is_err());
        assert!(s.user_insert("a b", "admin", "h", now).await.is_err());
        assert!(s.user_insert("x", "agent", "h", now).await.is_err());
        assert!(s
            .user_set_totp("li", Some(b"secret-bytes-20-long"), now)
            .await
            .unwrap());
        let a = s.user_auth("li").await.unwrap().unwrap();
        assert_eq!(a.totp_secret.as_deref(), Some(&b"secret-bytes-20-long"[..]));
        assert!(a.user.totp);
        // The sealed secret is bound to the user: the row holds no clear text.
        let ev = Event {
            at: now,
            customer: None,
            campaign: None,
            call: None,
            kind: EventKind::UserSignedIn {
                user: "li".into(),
                totp: true,
            },
        };
        assert!(s
            .user_signed_in(u.id, Some(100), "digest1", "csrf1", now, &ev)
            .await
            .unwrap());
        // The same step again: refused, no session written.
        assert!(!s
            .user_signed_in(u.id, Some(100), "digest2", "csrf2", now, &ev)
            .await
            .unwrap());
        assert!(s.session("digest2").await.unwrap().is_none());
        let sess = s.session("digest1").await.unwrap().unwrap();
        assert_eq!(sess.csrf, "csrf1");
        assert_eq!(sess.user.role, "supervisor");
        s.user_sign_in_failed(u.id, 5, Some(now), &[])
            .await
            .unwrap();
        assert_eq!(s.user("li").await.unwrap().unwrap().failed_attempts, 5);
        assert!(s.user_unlock("li", now).await.unwrap());
        assert_eq!(s.user("li").await.unwrap().unwrap().failed_attempts, 0);
        // Disabling ends the sessions.
        assert!(s.user_set_disabled("li", true, now).await.unwrap());
        assert!(s.session("digest1").await.unwrap().is_none());
        assert!(!s.user_unlock("nobody", now).await.unwrap());
    }
}
