//! Background work of the server.

pub mod sweeper;
