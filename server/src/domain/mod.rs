//! Pure types and rules of Verify Push: SIDs, dates, limits, validation. No HTTP, no SQL.

pub mod dates;
pub mod rules;
pub mod sid;
pub mod status;

#[cfg(test)]
mod sid_props;
#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests: a failure is a panic")]
mod typed_check;
