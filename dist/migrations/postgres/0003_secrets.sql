-- Secrets every process of a deployment shares, made by the first process that needs one:
-- the key that web conversations' tokens are derived from.
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    secret BYTEA NOT NULL
);
