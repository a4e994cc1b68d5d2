//! verify-push-server: a self-hosted emulator of Twilio Verify Push.
//!
//! Layers (see docs/ARCHITECTURE.md): `api` (HTTP only) → `domain` (rules, no I/O) and `crypto`
//! (functions over bytes) → `store` (all SQL). `startup` wires them with `config`, `accounts`
//! (authentication), `bootstrap` (seeding accounts from the flags), `seed` (the seed file), `keys` and `tls`, and starts the background tasks: the outbox workers of `push` and
//! `webhooks` and the sweeper of `workers`. `error` is every client-visible failure; `clock` the
//! time handlers and workers see.

pub mod accounts;
pub mod api;
pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod keys;
pub mod push;
pub mod seed;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod webhooks;
pub mod workers;
