//! The filestream input: discovers files, follows them and turns lines into events.

pub mod encoding;
