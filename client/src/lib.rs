//! The device side of Verify Push. Filled by the device-protocol issue (#3).
