#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// A build with no suite (`--no-default-features` alone) still compiles: key
// derivation, the wire format, and endpoints that refuse every suite. There
// `SuiteCipher` has no variant, so whatever follows making one is
// unreachable, which the compiler would otherwise point out at every use.
#![cfg_attr(
    not(any(feature = "suite-aes-gcm", feature = "suite-nea2-nia2")),
    allow(unreachable_code, unused_variables, unused_imports, unused_mut)
)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
pub mod driver;
pub mod endpoint;
pub mod kdf;
pub mod protect;
pub mod wire;
