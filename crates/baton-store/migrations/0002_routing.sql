-- Baton's schema, version 2: what routing needs to survive a restart. Times are milliseconds
-- since the Unix epoch.
ALTER TABLE agents ADD COLUMN languages TEXT NOT NULL DEFAULT '[]';   -- JSON array

ALTER TABLE conversations ADD COLUMN language TEXT;          -- the customer's, at handoff
ALTER TABLE conversations ADD COLUMN requested_agent TEXT;   -- dedicated agent to wait for first
ALTER TABLE conversations ADD COLUMN offered_at INTEGER;     -- when the current offer was made

-- SLA timers (time to first human response, next response). A timer runs from `started_at`;
-- `warn_at` and `due_at` are on the queue's business-hours clock. `warned` and `breached`
-- record that the event fired, so a restart fires each exactly once; `stopped_at` is set when
-- the agent answered.
CREATE TABLE sla_timers (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    kind            TEXT NOT NULL,          -- first_response | next_response
    queue           TEXT NOT NULL,
    started_at      INTEGER NOT NULL,
    warn_at         INTEGER NOT NULL,
    due_at          INTEGER NOT NULL,
    warned          INTEGER NOT NULL DEFAULT 0,
    breached        INTEGER NOT NULL DEFAULT 0,
    stopped_at      INTEGER,
    PRIMARY KEY (conversation_id, kind)
);
CREATE INDEX sla_timers_running ON sla_timers (stopped_at, warn_at);
