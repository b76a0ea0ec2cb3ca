-- A flow version belongs to a bot: two bots serving the same flow each keep it, so each
-- bot's waiting conversations can be moved to its next version.
CREATE TABLE flows_by_bot (
    bot TEXT NOT NULL,
    hash TEXT NOT NULL,
    bytecode BLOB NOT NULL,
    first_served INTEGER NOT NULL,
    PRIMARY KEY (bot, hash)
);
INSERT INTO flows_by_bot (bot, hash, bytecode, first_served) SELECT bot, hash, bytecode, first_served FROM flows;
DROP TABLE flows;
ALTER TABLE flows_by_bot RENAME TO flows;
