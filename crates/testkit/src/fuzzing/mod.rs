//! Entry points of the fuzz targets (feature `fuzzing`; `fuzz/` holds the
//! cargo-fuzz crate, `tests/fuzz_corpus.rs` replays the corpus on stable).
//!
//! Each public function takes the fuzzer's octets, drives the crate with real
//! cryptography (there is no fuzzing-only shortcut) and *asserts* its oracle:
//! a panic here is a finding. Nothing else in the crate depends on this module.
//!
//! | function | oracle |
//! |---|---|
//! | [`decode_any`] | `Message::parse` then `emit_into` gives the same octets; views agree with the Repr |
//! | [`repr_roundtrip`] | an arbitrary Repr → emit → parse gives the Repr back; signed control messages verify |
//! | [`unprotect`] | only what `seal` produced opens, to its payload; failures change neither buffer nor window; the window matches a model |
//! | [`kdf`] | the KDF equals an HMAC/HKDF reference; prepared = one-shot; the CLI parsers are consistent |
//! | [`endpoint`] | UE/EESE under a scripted lossy, reordering, forging network keep the invariants listed there |
//!
//! [`seeds`] builds the committed seed corpus, so it can be regenerated.

mod endpoint;
mod kdf;
pub(crate) mod reader;
pub mod seeds;
mod unprotect;
mod wire;

pub use endpoint::endpoint;
pub use kdf::kdf;
pub use unprotect::unprotect;
pub use wire::{decode_any, repr_roundtrip};

/// The script an `unprotect` or `endpoint` input stands for, one step a
/// line (for reading a crash); `None` for the other targets.
#[must_use]
pub fn describe(target: &str, bytes: &[u8]) -> Option<std::string::String> {
    match target {
        "unprotect" => Some(unprotect::describe(bytes)),
        "endpoint" => Some(endpoint::describe(bytes)),
        _ => None,
    }
}

/// A target's entry point.
pub type Target = fn(&[u8]);

/// The targets, by name, as the fuzz crate and the corpus directories call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("decode_any", decode_any),
    ("repr_roundtrip", repr_roundtrip),
    ("unprotect", unprotect),
    ("kdf", kdf),
    ("endpoint", endpoint),
];
