-- Baton's schema, version 4: the audit log, who did what with accounts, keys and
-- conversations that were not theirs (a supervisor lists it).
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,            -- ms since the epoch
    actor   TEXT NOT NULL,               -- agent:ID, key:ID, address:IP, cli
    action  TEXT NOT NULL,               -- sign_in, sign_in_failed, read, account_changed, ...
    subject TEXT NOT NULL,               -- the account, key or conversation acted on
    detail  TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
