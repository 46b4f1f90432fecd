//! `protect` and `unprotect`: data messages under a keyset from the command line.

use ciot_e2e::protect::suite::{SuiteCipher, SuiteKeys};
use ciot_e2e::wire::{DataPacket, Direction, Ksi, Suite};
use clap::{Args, ValueEnum};

use crate::Failure;
use crate::args::{KdfArg, RootKindArg, hex_array, hex_bytes, ue_nonce};
use crate::cmd_wire::{SuiteArg, prepared_root};

/// `--direction uplink|downlink`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DirectionArg {
    /// UE → EESE.
    Uplink,
    /// EESE → UE.
    Downlink,
}

/// Arguments of `ciot-e2e protect`.
#[derive(Args)]
pub struct ProtectArgs {
    /// The root key, 32 octets hex.
    #[arg(long)]
    root: String,
    /// RAND of the keyset, 16 octets hex.
    #[arg(long)]
    rand: String,
    /// KSI of the keyset.
    #[arg(long)]
    ksi: u8,
    /// Trigger counter of the keyset: the counter of the derive trigger
    /// that installed it. Algorithm keys are bound to it, so the same RAND
    /// under another counter gives other keys.
    #[arg(long, default_value_t = 1)]
    counter: u64,
    /// The nonce of the UE start the keyset was made for (the nonce of the
    /// hello its trigger answered), 16 octets hex: P3 of every algorithm
    /// key, so the same keyset under another nonce gives other keys.
    #[arg(long)]
    nonce: String,
    /// Sequence number.
    #[arg(long)]
    seq: u32,
    /// Direction.
    #[arg(long, value_enum)]
    direction: DirectionArg,
    /// Suite.
    #[arg(long, value_enum)]
    suite: SuiteArg,
    /// Payload, hex.
    #[arg(long)]
    payload: String,
    /// KDF profile.
    #[arg(long, value_enum, default_value_t)]
    kdf: KdfArg,
    /// Which solution's root --root is.
    #[arg(long, value_enum, default_value_t)]
    root_kind: RootKindArg,
}

/// Arguments of `ciot-e2e unprotect`.
#[derive(Args)]
pub struct UnprotectArgs {
    /// The root key, 32 octets hex.
    #[arg(long)]
    root: String,
    /// RAND of the keyset, 16 octets hex.
    #[arg(long)]
    rand: String,
    /// The data message, hex.
    #[arg(long)]
    message: String,
    /// Trigger counter of the keyset: the counter of the derive trigger
    /// that installed it. Algorithm keys are bound to it, so the same RAND
    /// under another counter gives other keys.
    #[arg(long, default_value_t = 1)]
    counter: u64,
    /// The nonce of the UE start the keyset was made for (the nonce of the
    /// hello its trigger answered), 16 octets hex: P3 of every algorithm
    /// key, so the same keyset under another nonce gives other keys.
    #[arg(long)]
    nonce: String,
    /// KDF profile.
    #[arg(long, value_enum, default_value_t)]
    kdf: KdfArg,
    /// Which solution's root --root is.
    #[arg(long, value_enum, default_value_t)]
    root_kind: RootKindArg,
}

/// The keyset's inputs as given on the command line.
struct KeysetArgs<'a> {
    root: &'a str,
    kind: RootKindArg,
    kdf: KdfArg,
    rand: &'a str,
    counter: u64,
    nonce: &'a str,
}

fn cipher(k: &KeysetArgs<'_>, suite: Suite) -> Result<SuiteCipher, Failure> {
    let nonce = ue_nonce(k.nonce).map_err(Failure::usage)?;
    let keyset = prepared_root(k.root, k.kind, k.kdf)?.keyset(&ciot_e2e::kdf::Rand(
        hex_array("rand", k.rand).map_err(Failure::usage)?,
    ));
    Ok(
        SuiteKeys::derive(k.kdf.into(), &keyset, suite, k.counter, &nonce)
            .map_err(|e| Failure::rejected(e.to_string()))?
            .cipher(),
    )
}

/// Runs `ciot-e2e protect`.
pub fn protect(a: &ProtectArgs) -> Result<(), Failure> {
    let payload = hex_bytes(&a.payload).map_err(|e| Failure::usage(format!("--payload: {e}")))?;
    let keyset = KeysetArgs {
        root: &a.root,
        kind: a.root_kind,
        kdf: a.kdf,
        rand: &a.rand,
        counter: a.counter,
        nonce: &a.nonce,
    };
    let c = cipher(&keyset, a.suite.into())?;
    let direction = match a.direction {
        DirectionArg::Uplink => Direction::Uplink,
        DirectionArg::Downlink => Direction::Downlink,
    };
    let mut out = vec![0u8; c.message_len(payload.len())];
    let n = c
        .seal(Ksi(a.ksi), direction, a.seq, &payload, &mut out)
        .map_err(|e| Failure::usage(e.to_string()))?;
    crate::outln!("{}", hex::encode(&out[..n]));
    Ok(())
}

/// Runs `ciot-e2e unprotect`: exit 2 with a one-line reason on a bad tag or
/// a malformed message.
pub fn unprotect(a: &UnprotectArgs) -> Result<(), Failure> {
    let mut msg =
        hex_bytes(&a.message).map_err(|e| Failure::rejected(format!("--message: {e}")))?;
    let suite = DataPacket::new_checked(&msg[..])
        .map_err(|e| Failure::rejected(format!("malformed data message: {e}")))?
        .suite();
    let keyset = KeysetArgs {
        root: &a.root,
        kind: a.root_kind,
        kdf: a.kdf,
        rand: &a.rand,
        counter: a.counter,
        nonce: &a.nonce,
    };
    let c = cipher(&keyset, suite)?;
    let opened = c
        .open_in_place(&mut msg)
        .map_err(|e| Failure::rejected(e.to_string()))?;
    crate::outln!("{}", hex::encode(&msg[opened.payload]));
    Ok(())
}
