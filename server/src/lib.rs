//! verify-push-server: a self-hosted emulator of Twilio Verify Push.
//!
//! Layers (see docs/ARCHITECTURE.md): `api` (HTTP only) → `domain` (rules, no I/O) and `crypto`
//! (pure functions) → `store` (all SQL). `startup` wires them; `workers` run in the background.

pub mod accounts;
pub mod api;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod keys;
pub mod push;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod webhooks;
pub mod workers;
