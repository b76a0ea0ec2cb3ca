-- Flow versions get a number per bot (in the order first served) and the commit they came
-- from; environments (aliases per bot) point at versions; every move of one is a deploy.
ALTER TABLE flows ADD COLUMN number INTEGER NOT NULL DEFAULT 0;
ALTER TABLE flows ADD COLUMN source_commit TEXT NOT NULL DEFAULT '';
ALTER TABLE flows ADD COLUMN source_author TEXT NOT NULL DEFAULT '';
ALTER TABLE flows ADD COLUMN source_message TEXT NOT NULL DEFAULT '';
UPDATE flows SET number = (
    SELECT COUNT(*) FROM flows AS f
    WHERE f.bot = flows.bot
      AND (f.first_served < flows.first_served OR (f.first_served = flows.first_served AND f.hash <= flows.hash))
);
CREATE UNIQUE INDEX flows_by_number ON flows (bot, number);
CREATE TABLE aliases (
    bot TEXT NOT NULL,
    environment TEXT NOT NULL,
    number INTEGER NOT NULL,
    PRIMARY KEY (bot, environment)
);
CREATE TABLE deploys (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    bot TEXT NOT NULL,
    environment TEXT NOT NULL,
    from_number INTEGER,
    to_number INTEGER NOT NULL,
    action TEXT NOT NULL,
    by_whom TEXT NOT NULL,
    plan TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX deploys_by_bot ON deploys (bot, seq);
