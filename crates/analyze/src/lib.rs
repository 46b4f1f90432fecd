//! Packet analysis for the ciot-e2e wire format: a lax dissector that shows
//! every field with its byte range (even of malformed messages), capture
//! files (pcap, pcapng) and the key log that lets an analyzer decrypt.
//!
//! Built on the protocol crate's checked views; nothing here is needed to run
//! the protocol.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dissect;
pub mod keylog;
