-- Twilio's rate limits (README, "Rate limits"), counted in the database so that they hold under
-- concurrency and across every instance on one database.

-- Factor creations per Entity per day (60326): the day (Unix seconds / 86400) being counted and
-- the creations in it. Creating a Factor upserts its Entity, bumping these, which also locks the
-- Entity's row until the Factor is stored, so its limit and binding checks see every other
-- creation (store/factors.rs). Existing Entities start counting at their next creation.
ALTER TABLE entities ADD COLUMN factor_day BIGINT NOT NULL DEFAULT 0;
ALTER TABLE entities ADD COLUMN factors_that_day BIGINT NOT NULL DEFAULT 0;

-- Entity creations per account per second (60328): the second being counted and the creations
-- in it, bumped in the transaction that creates the Entity. The CHECK is the limit (domain/rules.rs
-- MAX_ENTITIES_PER_ACCOUNT_PER_SECOND): the 41st creation in a second fails it and rolls back.
CREATE TABLE entity_creations (
    account_sid TEXT PRIMARY KEY,
    second      BIGINT NOT NULL,
    created     BIGINT NOT NULL CHECK (created <= 40)
);
