-- Push delivery: Notify-style credentials (secrets encrypted at rest), challenge notifications,
-- and a durable outbox of pushes with every delivery attempt.

CREATE TABLE credentials (
    id            BIGSERIAL PRIMARY KEY,
    sid           TEXT NOT NULL UNIQUE,
    account_sid   TEXT NOT NULL,
    friendly_name TEXT,
    type          TEXT NOT NULL,
    sandbox       BOOLEAN NOT NULL,
    -- AES-256-GCM of the secret material as JSON: base64(nonce ‖ ciphertext ‖ tag).
    secret        TEXT NOT NULL,
    date_created  BIGINT NOT NULL,
    date_updated  BIGINT NOT NULL
);
CREATE INDEX credentials_account ON credentials (account_sid, id);

CREATE TABLE notifications (
    id            BIGSERIAL PRIMARY KEY,
    sid           TEXT NOT NULL UNIQUE,
    challenge_id  BIGINT NOT NULL REFERENCES challenges (id) ON DELETE CASCADE,
    account_sid   TEXT NOT NULL,
    service_sid   TEXT NOT NULL,
    entity_sid    TEXT NOT NULL,
    identity      TEXT NOT NULL,
    challenge_sid TEXT NOT NULL,
    priority      TEXT NOT NULL,
    ttl           BIGINT NOT NULL,
    date_created  BIGINT NOT NULL
);
CREATE INDEX notifications_challenge ON notifications (challenge_id);

CREATE TABLE pushes (
    id               BIGSERIAL PRIMARY KEY,
    account_sid      TEXT NOT NULL,
    service_sid      TEXT NOT NULL,
    factor_sid       TEXT NOT NULL,
    challenge_sid    TEXT NOT NULL,
    notification_sid TEXT,
    platform         TEXT NOT NULL,
    target           TEXT NOT NULL,
    -- The credential to send with; NULL means record mode (nothing is sent).
    credential_sid   TEXT,
    topic            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    expires_at       BIGINT NOT NULL,
    -- queued | sending | retrying | sent | failed | recorded
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    max_attempts     BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    last_error       TEXT,
    date_created     BIGINT NOT NULL,
    date_updated     BIGINT NOT NULL
);
CREATE INDEX pushes_due ON pushes (status, next_attempt_at);
CREATE INDEX pushes_account ON pushes (account_sid, id);

CREATE TABLE push_attempts (
    id          BIGSERIAL PRIMARY KEY,
    push_id     BIGINT NOT NULL REFERENCES pushes (id) ON DELETE CASCADE,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    http_status BIGINT,
    outcome     TEXT NOT NULL,
    error       TEXT,
    latency_ms  BIGINT NOT NULL
);
CREATE INDEX push_attempts_push ON push_attempts (push_id, id);
