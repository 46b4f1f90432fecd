//! `nia2` and `nea2`: the 3GPP algorithms on raw inputs, for checking a
//! modem's implementation against this one.

use ciot_e2e::kdf::AlgKey;
use ciot_e2e::protect::nea2_nia2;
use clap::Args;

use crate::Failure;
use crate::args::{hex_array, hex_bytes};

/// COUNT, BEARER, DIRECTION and LENGTH, shared by both subcommands.
#[derive(Args)]
pub struct AlgoInputs {
    /// The 128-bit algorithm key, 16 octets hex.
    #[arg(long)]
    key: String,
    /// COUNT, 4 octets hex (8 hex digits, most significant first).
    #[arg(long)]
    count: String,
    /// BEARER, 0..=31.
    #[arg(long)]
    bearer: u64,
    /// DIRECTION: 0 (uplink) or 1 (downlink).
    #[arg(long)]
    direction: u64,
    /// LENGTH in bits; defaults to 8 × the data length. The data must be
    /// exactly ceil(bits / 8) octets.
    #[arg(long)]
    bits: Option<usize>,
}

/// Arguments of `ciot-e2e nia2`.
#[derive(Args)]
pub struct Nia2Args {
    #[command(flatten)]
    inputs: AlgoInputs,
    /// MESSAGE, hex.
    #[arg(long)]
    message: String,
}

/// Arguments of `ciot-e2e nea2`.
#[derive(Args)]
pub struct Nea2Args {
    #[command(flatten)]
    inputs: AlgoInputs,
    /// Plaintext to encrypt or ciphertext to decrypt, hex.
    #[arg(long)]
    data: String,
}

/// The parsed inputs: key, COUNT, BEARER, DIRECTION.
struct Parsed {
    key: AlgKey,
    count: u32,
    bearer: u8,
    direction: u8,
}

impl AlgoInputs {
    fn parse(&self) -> Result<Parsed, Failure> {
        let key = AlgKey::from_bytes(hex_array("key", &self.key).map_err(Failure::usage)?);
        let count = u32::from_be_bytes(hex_array("count", &self.count).map_err(Failure::usage)?);
        // Values past u8 are reported in the library's words, not clap's.
        let bearer = u8::try_from(self.bearer)
            .map_err(|_| Failure::usage(format!("BEARER must be 0..=31, got {}", self.bearer)))?;
        let direction = u8::try_from(self.direction).map_err(|_| {
            Failure::usage(format!(
                "DIRECTION must be 0 (uplink) or 1 (downlink), got {}",
                self.direction
            ))
        })?;
        Ok(Parsed {
            key,
            count,
            bearer,
            direction,
        })
    }

    /// `--bits`, or 8 × the data length.
    fn bits(&self, data: &[u8]) -> Result<usize, Failure> {
        match self.bits {
            Some(bits) => Ok(bits),
            None => data
                .len()
                .checked_mul(8)
                .ok_or_else(|| Failure::usage("the data is too long to give its length in bits")),
        }
    }
}

/// Runs `ciot-e2e nia2`: prints the 32-bit MAC.
pub fn nia2(a: &Nia2Args) -> Result<(), Failure> {
    let p = a.inputs.parse()?;
    let message = hex_bytes(&a.message).map_err(|e| Failure::usage(format!("--message: {e}")))?;
    let bits = a.inputs.bits(&message)?;
    let mac = nea2_nia2::nia2(&p.key, p.count, p.bearer, p.direction, &message, bits)
        .map_err(|e| Failure::usage(e.to_string()))?;
    crate::outln!("{}", hex::encode(mac));
    Ok(())
}

/// Runs `ciot-e2e nea2`: prints the data after applying the keystream.
pub fn nea2(a: &Nea2Args) -> Result<(), Failure> {
    let p = a.inputs.parse()?;
    let mut data = hex_bytes(&a.data).map_err(|e| Failure::usage(format!("--data: {e}")))?;
    let bits = a.inputs.bits(&data)?;
    nea2_nia2::nea2(&p.key, p.count, p.bearer, p.direction, &mut data, bits)
        .map_err(|e| Failure::usage(e.to_string()))?;
    crate::outln!("{}", hex::encode(&data));
    Ok(())
}
