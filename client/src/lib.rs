//! verify-push-client: a Verify Push device you can script.
//!
//! It speaks the protocol of Twilio's official Android and iOS Verify SDKs
//! (docs/protocol/device-protocol.md), written from that protocol and not from this project's
//! server, so it works against any base URL: this emulator, or Twilio's own
//! `https://verify.twilio.com/v2/`.
//!
//! - [`keystore`]: P-256 device keys and enrolment state, one 0600 file per profile.
//! - [`jwt`]: the per-request factor JWT, the challenge AuthPayload, DER ↔ r‖s.
//! - [`encoding`]: the two SDKs' form encodings ([`Style::Android`], [`Style::Ios`]).
//! - [`device`]: one method per SDK call, with the SDKs' 401-`Date` clock re-sync and one retry.
//! - [`error`]: Twilio errors parsed into [`DeviceError::Api`].

pub mod device;
pub mod encoding;
pub mod error;
pub mod jwt;
pub mod keystore;

pub use device::{Challenge, ChallengePage, Device, Factor, ListOptions};
pub use encoding::Style;
pub use error::DeviceError;
pub use keystore::{KeyStore, Profile};
