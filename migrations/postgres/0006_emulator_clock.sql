-- The emulated clock (README, "Test controls"): one row, shared by every instance on this
-- database. `now` is the instance's real time + offset_seconds, or frozen_at while frozen;
-- version grows with every change (compare-and-set, and how an instance knows its cache is old).
CREATE TABLE emulator_clock (
    id             BIGINT PRIMARY KEY CHECK (id = 1),
    offset_seconds BIGINT NOT NULL,
    frozen_at      BIGINT,
    version        BIGINT NOT NULL
);
INSERT INTO emulator_clock (id, offset_seconds, frozen_at, version) VALUES (1, 0, NULL, 0);
