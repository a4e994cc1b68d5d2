-- Virtual devices (README, "Virtual devices"): a P-256 key the server holds for a push Factor it
-- enrolled through the device path. The key is PKCS#8 DER sealed with the credentials key, as push
-- credential material is. A device exists while its Factor does: deleting the Factor, its Entity
-- or its Service deletes the device (ON DELETE CASCADE).
CREATE TABLE virtual_devices (
    id           BIGSERIAL PRIMARY KEY,
    factor_id    BIGINT NOT NULL UNIQUE REFERENCES factors (id) ON DELETE CASCADE,
    factor_sid   TEXT NOT NULL UNIQUE,
    account_sid  TEXT NOT NULL,
    service_sid  TEXT NOT NULL,
    identity     TEXT NOT NULL,
    style        TEXT NOT NULL,
    sealed_key   TEXT NOT NULL,
    date_created BIGINT NOT NULL
);
CREATE INDEX virtual_devices_account ON virtual_devices (account_sid, id);
