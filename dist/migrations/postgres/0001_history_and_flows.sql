-- Conversation history (what `botc history` reads) and the flow registry: every flow version
-- a bot has served, so a conversation pinned to an older one can be moved to the next.
CREATE TABLE history (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    bot TEXT NOT NULL,
    conversation TEXT NOT NULL,
    user_id TEXT NOT NULL,
    platform TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    buttons JSONB NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX history_by_user ON history (bot, user_id, seq);
CREATE INDEX history_by_conversation ON history (bot, conversation, seq);
CREATE INDEX history_by_time ON history (bot, at);
CREATE TABLE flows (
    bot TEXT NOT NULL,
    hash TEXT NOT NULL,
    bytecode BYTEA NOT NULL,
    first_served BIGINT NOT NULL,
    PRIMARY KEY (bot, hash)
);
