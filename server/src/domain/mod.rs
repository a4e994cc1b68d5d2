//! Pure types and rules of Verify Push: SIDs, dates, limits, validation. No HTTP, no SQL.

pub mod dates;
pub mod rules;
pub mod sid;
pub mod status;

#[cfg(test)]
mod sid_props;
