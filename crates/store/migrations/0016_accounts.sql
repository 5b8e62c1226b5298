-- waihu schema v16: user accounts and sign-in sessions (issue 19 item 1).
-- A user signs in with a password (argon2id PHC string) and, when enrolled, a
-- TOTP code; the secret is sealed by the vault, bound to the user's name.

-- Roles gain `supervisor` (between operator and admin), for keys as for users.
-- (SQLite cannot change a CHECK: the table is rebuilt; nothing references it.)
CREATE TABLE api_keys_v16 (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'operator', 'analyst', 'agent')),
    key_sha256  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT,
    agent_id    TEXT,
    CHECK ((role = 'agent') = (agent_id IS NOT NULL))
);
INSERT INTO api_keys_v16 (id, name, role, key_sha256, created_at, revoked_at, agent_id)
SELECT id, name, role, key_sha256, created_at, revoked_at, agent_id FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_v16 RENAME TO api_keys;

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'operator', 'analyst')),
    password_hash   TEXT NOT NULL,
    -- Vault-sealed TOTP secret (bound to users|totp|name); NULL: not enrolled.
    totp_sealed     BLOB,
    -- The last TOTP step accepted: a code of that step or an earlier one is refused.
    totp_last_step  INTEGER,
    disabled        INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- One row per signed-in browser. The cookie's token is kept only as its
-- SHA-256; the CSRF token is sealed (bound to sessions|csrf|token digest) so
-- `GET /api/auth/me` can hand it to a page opened later in the same session.
CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_sealed  BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen    TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
