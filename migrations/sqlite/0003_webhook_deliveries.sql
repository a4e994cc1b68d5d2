-- Webhook delivery: one row per (event, webhook), written in the transaction of the change that
-- caused the event, delivered in order per (webhook, factor), every attempt logged.

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT NOT NULL UNIQUE,
    account_sid     TEXT NOT NULL,
    service_sid     TEXT NOT NULL,
    webhook_sid     TEXT NOT NULL,
    url             TEXT NOT NULL,
    version         TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    factor_sid      TEXT NOT NULL,
    -- The event's fields (v2 set) as a JSON object of strings; v1 drops the v2-only ones.
    fields          TEXT NOT NULL,
    -- pending | sending | retrying | delivered | failed | cancelled
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    max_attempts    INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_error      TEXT,
    date_created    INTEGER NOT NULL,
    date_updated    INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook_sid, factor_sid, id);
CREATE INDEX webhook_deliveries_account ON webhook_deliveries (account_sid, id);

CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    http_status INTEGER,
    outcome     TEXT NOT NULL,
    error       TEXT,
    latency_ms  INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

CREATE INDEX webhooks_service_status ON webhooks (service_sid, status);
