//! Parsers for command-line values shared by the subcommands.

use ciot_e2e::kdf::{KdfProfile, RootKind, UeNonce};
use clap::ValueEnum;

/// Parses hex (either case, no prefix) into octets.
pub fn hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s.trim()).map_err(|e| format!("not hex ({e}): {s:?}"))
}

/// Parses hex of an exact length in octets.
pub fn hex_array<const N: usize>(what: &str, s: &str) -> Result<[u8; N], String> {
    let v = hex_bytes(s).map_err(|e| format!("--{what}: {e}"))?;
    <[u8; N]>::try_from(v.as_slice()).map_err(|_| {
        format!(
            "--{what} must be {N} octets ({} hex digits), got {} octets",
            2 * N,
            v.len()
        )
    })
}

/// Parses `--nonce`: the 16-octet nonce of a UE start, hex.
pub fn ue_nonce(s: &str) -> Result<UeNonce, String> {
    hex_array("nonce", s).map(UeNonce::from_bytes)
}

/// `--kdf 3gpp|hkdf`.
#[derive(Clone, Copy, Debug, ValueEnum, Default)]
pub enum KdfArg {
    /// TS 33.220 Annex B.2 (HMAC-SHA-256).
    #[default]
    #[value(name = "3gpp")]
    Ts33220,
    /// HKDF-SHA-256 (RFC 5869).
    Hkdf,
}

impl From<KdfArg> for KdfProfile {
    fn from(a: KdfArg) -> Self {
        match a {
            KdfArg::Ts33220 => KdfProfile::Ts33220,
            KdfArg::Hkdf => KdfProfile::HkdfSha256,
        }
    }
}

/// `--root-kind int-key|e2m-keyset|e2m-key`.
#[derive(Clone, Copy, Debug, ValueEnum, Default)]
pub enum RootKindArg {
    /// Solution #5: e2e_int_key.
    #[default]
    IntKey,
    /// Solution #1: e2mKEYSET.
    E2mKeyset,
    /// Solution #2: e2m_key.
    E2mKey,
}

impl From<RootKindArg> for RootKind {
    fn from(a: RootKindArg) -> Self {
        match a {
            RootKindArg::IntKey => RootKind::IntKey,
            RootKindArg::E2mKeyset => RootKind::E2mKeyset,
            RootKindArg::E2mKey => RootKind::E2mKey,
        }
    }
}

/// A KDF profile as `--kdf` spells it.
pub fn kdf_name(p: KdfProfile) -> &'static str {
    match p {
        KdfProfile::Ts33220 => "3gpp",
        KdfProfile::HkdfSha256 => "hkdf",
    }
}
