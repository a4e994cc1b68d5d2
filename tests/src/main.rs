//! End-to-end tests: real servers over HTTP, each test on SQLite and on PostgreSQL.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly by design")]

mod fakes;
mod helpers;
mod schema;

mod access_tokens;
mod accounts;
mod auth_matrix;
mod bad_input;
mod challenges;
mod concurrency;
mod contract;
mod device;
mod emulator_clock;
mod emulator_devices;
mod entities;
mod factors;
mod faults;
mod form_props;
mod headers;
mod helper_libs;
mod paging;
mod push;
mod secrets;
mod services;
mod sleeps;
mod webhook_delivery;
mod webhooks;
