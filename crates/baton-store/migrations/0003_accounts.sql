-- Baton's schema, version 3: accounts for the console and keys for programs.
-- Passwords are argon2id PHC strings; session tokens and API keys are stored only as SHA-256
-- hex digests, so the database never holds a usable secret.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,        -- the agent's id
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,           -- agent | supervisor | admin
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    scopes     TEXT NOT NULL,              -- JSON array of bot | agent | admin
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- The customer widget: a secret per conversation, so a customer sees only their own.
CREATE TABLE widget_tokens (
    token_hash      TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id)
);

ALTER TABLE conversations ADD COLUMN csat INTEGER;            -- 1-5, after the human part
