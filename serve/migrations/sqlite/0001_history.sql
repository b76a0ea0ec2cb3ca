-- History and the flow registry as botc 0.1 created them (IF NOT EXISTS: databases from
-- before botc used migrations already have these).
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    bot TEXT NOT NULL,
    conversation TEXT NOT NULL,
    user_id TEXT NOT NULL,
    platform TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    buttons TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_user ON history (bot, user_id, seq);
CREATE INDEX IF NOT EXISTS history_by_conversation ON history (bot, conversation, seq);
CREATE TABLE IF NOT EXISTS flows (
    hash TEXT PRIMARY KEY,
    bot TEXT NOT NULL,
    bytecode BLOB NOT NULL,
    first_served INTEGER NOT NULL
);
