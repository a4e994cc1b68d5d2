-- Core Verify v2 resources. Times are Unix seconds (UTC). JSON values are stored as text.
-- Every table has an integer `id` used for keyset paging (ORDER BY id), and a Twilio SID.

CREATE TABLE accounts (
    sid           TEXT PRIMARY KEY,
    auth_token    TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    date_created  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    sid           TEXT PRIMARY KEY,
    account_sid   TEXT NOT NULL REFERENCES accounts (sid) ON DELETE CASCADE,
    secret_sha256 BYTEA NOT NULL,
    date_created  BIGINT NOT NULL
);

CREATE TABLE server_keys (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE services (
    id                      BIGSERIAL PRIMARY KEY,
    sid                     TEXT NOT NULL UNIQUE,
    account_sid             TEXT NOT NULL,
    friendly_name           TEXT NOT NULL,
    push_include_date       BOOLEAN NOT NULL,
    push_apn_credential_sid TEXT,
    push_fcm_credential_sid TEXT,
    totp_issuer             TEXT,
    totp_time_step          BIGINT,
    totp_code_length        BIGINT,
    totp_skew               BIGINT,
    settings                TEXT NOT NULL,
    date_created            BIGINT NOT NULL,
    date_updated            BIGINT NOT NULL
);
CREATE INDEX services_account ON services (account_sid, id);

CREATE TABLE entities (
    id           BIGSERIAL PRIMARY KEY,
    sid          TEXT NOT NULL UNIQUE,
    service_id   BIGINT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    account_sid  TEXT NOT NULL,
    service_sid  TEXT NOT NULL,
    identity     TEXT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL,
    UNIQUE (service_id, identity)
);

CREATE TABLE factors (
    id                 BIGSERIAL PRIMARY KEY,
    sid                TEXT NOT NULL UNIQUE,
    entity_id          BIGINT NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    account_sid        TEXT NOT NULL,
    service_sid        TEXT NOT NULL,
    entity_sid         TEXT NOT NULL,
    identity           TEXT NOT NULL,
    friendly_name      TEXT NOT NULL,
    factor_type        TEXT NOT NULL,
    status             TEXT NOT NULL,
    binding_alg        TEXT NOT NULL,
    binding_public_key TEXT NOT NULL,
    credential_sid     TEXT NOT NULL UNIQUE,
    config             TEXT NOT NULL,
    metadata           TEXT,
    date_created       BIGINT NOT NULL,
    date_updated       BIGINT NOT NULL
);
CREATE INDEX factors_entity ON factors (entity_id, id);
CREATE INDEX factors_unverified ON factors (status, date_created);

CREATE TABLE challenges (
    id               BIGSERIAL PRIMARY KEY,
    sid              TEXT NOT NULL UNIQUE,
    entity_id        BIGINT NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    factor_id        BIGINT NOT NULL REFERENCES factors (id) ON DELETE CASCADE,
    account_sid      TEXT NOT NULL,
    service_sid      TEXT NOT NULL,
    entity_sid       TEXT NOT NULL,
    identity         TEXT NOT NULL,
    factor_sid       TEXT NOT NULL,
    factor_type      TEXT NOT NULL,
    status           TEXT NOT NULL,
    responded_reason TEXT NOT NULL,
    details          TEXT NOT NULL,
    hidden_details   TEXT,
    metadata         TEXT,
    expiration_date  BIGINT NOT NULL,
    date_responded   BIGINT,
    date_created     BIGINT NOT NULL,
    date_updated     BIGINT NOT NULL
);
CREATE INDEX challenges_entity ON challenges (entity_id, id);
CREATE INDEX challenges_entity_status ON challenges (entity_id, status, id);
CREATE INDEX challenges_factor_status ON challenges (factor_id, status, id);
CREATE INDEX challenges_pending_expiry ON challenges (status, expiration_date);

CREATE TABLE access_tokens (
    id                   BIGSERIAL PRIMARY KEY,
    sid                  TEXT NOT NULL UNIQUE,
    service_id           BIGINT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    account_sid          TEXT NOT NULL,
    service_sid          TEXT NOT NULL,
    entity_identity      TEXT NOT NULL,
    factor_type          TEXT NOT NULL,
    factor_friendly_name TEXT,
    token                TEXT NOT NULL,
    ttl                  BIGINT NOT NULL,
    date_created         BIGINT NOT NULL
);

CREATE TABLE webhooks (
    id             BIGSERIAL PRIMARY KEY,
    sid            TEXT NOT NULL UNIQUE,
    service_id     BIGINT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    account_sid    TEXT NOT NULL,
    service_sid    TEXT NOT NULL,
    friendly_name  TEXT NOT NULL,
    event_types    TEXT NOT NULL,
    webhook_url    TEXT NOT NULL,
    webhook_method TEXT NOT NULL,
    status         TEXT NOT NULL,
    version        TEXT NOT NULL,
    date_created   BIGINT NOT NULL,
    date_updated   BIGINT NOT NULL
);
CREATE INDEX webhooks_service ON webhooks (service_id, id);
