//! `ciot-e2e emks`: the EMKS as a service. HTTPS with mutual TLS; the
//! client certificate says who calls (the HSS, or the EESE of an
//! enterprise); state in one redb file ([`store`]).

pub mod api;
pub mod audit;
pub mod client;
pub mod kek;
mod server;
pub mod store;

pub use server::{EmksConfig, serve, serve_until};
