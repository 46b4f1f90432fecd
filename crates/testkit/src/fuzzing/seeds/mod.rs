//! The seed corpus, built from the crate itself so that it stays valid as the
//! format evolves. `tests/fuzz_corpus.rs` checks that `fuzz/corpus/` holds
//! every seed and rewrites them when asked (`CIOT_E2E_WRITE_SEEDS=1`).

use std::format;
use std::string::String;
use std::vec::Vec;

mod endpoint;
mod kdf;
mod messages;
mod unprotect;

use endpoint::endpoint_scripts;
use kdf::kdf_inputs;
use messages::messages;
use unprotect::unprotect_scripts;

/// A seed: the target it feeds, a file name, the octets.
pub type Seed = (&'static str, String, Vec<u8>);

/// Every seed of every target.
#[must_use]
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    for (name, bytes) in messages() {
        out.push(("decode_any", name.clone(), bytes.clone()));
        out.push(("repr_roundtrip", name, bytes));
    }
    for which in 0u8..6 {
        let bytes: Vec<u8> = core::iter::once(which)
            .chain((0u8..96).map(|i| i.wrapping_mul(37) ^ which))
            .collect();
        out.push(("repr_roundtrip", format!("pattern-{which}"), bytes));
    }
    for (name, bytes) in unprotect_scripts() {
        out.push(("unprotect", name, bytes));
    }
    for (name, bytes) in kdf_inputs() {
        out.push(("kdf", name, bytes));
    }
    for (name, bytes) in endpoint_scripts() {
        out.push(("endpoint", name, bytes));
    }
    out
}
