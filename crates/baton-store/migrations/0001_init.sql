-- Baton's schema, version 1. Times are milliseconds since the Unix epoch.
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    customer    TEXT NOT NULL,              -- JSON, the Customer object
    channel     TEXT,
    state       TEXT NOT NULL,              -- HandoffState wire name
    queue       TEXT,
    priority    INTEGER NOT NULL DEFAULT 0,
    queued_at   INTEGER,
    agent_id    TEXT,
    brief       TEXT,                       -- JSON, the latest Brief
    disposition TEXT,
    created_at  INTEGER NOT NULL,
    assigned_at INTEGER,
    resolved_at INTEGER,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX conversations_waiting ON conversations (queue, state, priority DESC, queued_at);
CREATE INDEX conversations_agent ON conversations (agent_id, state);

CREATE TABLE turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    seq             INTEGER NOT NULL,       -- 0-based turn index
    role            TEXT NOT NULL,
    body            TEXT NOT NULL,          -- JSON, the Turn object
    client_turn_id  TEXT,
    decision        TEXT,                   -- JSON, the Decision
    signals         TEXT,                   -- JSON, the signals
    response        TEXT,                   -- JSON, what the API answered (for idempotent retries)
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX turns_client_turn_id ON turns (conversation_id, client_turn_id)
    WHERE client_turn_id IS NOT NULL;

CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL,
    kind            TEXT NOT NULL,          -- transition | note
    from_state      TEXT,
    to_state        TEXT,
    actor           TEXT NOT NULL,
    reason          TEXT NOT NULL,
    at              INTEGER NOT NULL
);
CREATE INDEX events_conversation ON events (conversation_id, id);

CREATE TABLE agents (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    skills     TEXT NOT NULL,               -- JSON array
    capacity   INTEGER NOT NULL,
    status     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
