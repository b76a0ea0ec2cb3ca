-- Flow versions get a number per bot (in the order first served) and the commit they came
-- from; environments (aliases per bot) point at versions; every move of one is a deploy,
-- announced on the `botc_deploys` channel (NOTIFY) when it commits.
ALTER TABLE flows ADD COLUMN number BIGINT;
ALTER TABLE flows ADD COLUMN source_commit TEXT NOT NULL DEFAULT '';
ALTER TABLE flows ADD COLUMN source_author TEXT NOT NULL DEFAULT '';
ALTER TABLE flows ADD COLUMN source_message TEXT NOT NULL DEFAULT '';
UPDATE flows SET number = n.number
FROM (SELECT bot, hash, row_number() OVER (PARTITION BY bot ORDER BY first_served, hash) AS number FROM flows) AS n
WHERE flows.bot = n.bot AND flows.hash = n.hash;
ALTER TABLE flows ALTER COLUMN number SET NOT NULL;
CREATE UNIQUE INDEX flows_by_number ON flows (bot, number);
CREATE TABLE aliases (
    bot TEXT NOT NULL,
    environment TEXT NOT NULL,
    number BIGINT NOT NULL,
    PRIMARY KEY (bot, environment)
);
CREATE TABLE deploys (
    seq BIGSERIAL PRIMARY KEY,
    bot TEXT NOT NULL,
    environment TEXT NOT NULL,
    from_number BIGINT,
    to_number BIGINT NOT NULL,
    action TEXT NOT NULL,
    by_whom TEXT NOT NULL,
    plan TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX deploys_by_bot ON deploys (bot, seq);
