//! `kdf` and `derive`: key derivation from the command line.

use ciot_e2e::kdf::{self, Ck, CkIk, Fc, Ik, PreparedRoot, Rand, RootBytes, RootKey};
use clap::{Args, Subcommand};

use crate::Failure;
use crate::args::{KdfArg, RootKindArg, hex_array, hex_bytes};

/// Arguments of `ciot-e2e kdf`.
#[derive(Args)]
pub struct KdfArgs {
    /// The KDF key, hex (any length; 3GPP uses 32 octets).
    #[arg(long)]
    key: String,
    /// FC, hex: one octet (`10`) or the two-octet form `ff` + FC2 (`ff01`).
    #[arg(long)]
    fc: String,
    /// A parameter P0, P1, ... in order, hex; repeat for each (may be empty: --param "").
    #[arg(long = "param")]
    params: Vec<String>,
}

/// `ciot-e2e derive ...`.
#[derive(Subcommand)]
pub enum DeriveCommand {
    /// e2e_int_key = KDF(CK || IK, "CIoT End-to-end") (solution #5 root).
    IntKey {
        /// CK, 16 octets hex.
        #[arg(long)]
        ck: String,
        /// IK, 16 octets hex.
        #[arg(long)]
        ik: String,
        /// KDF profile.
        #[arg(long, value_enum, default_value_t)]
        kdf: KdfArg,
    },
    /// e2eKEYSET = KDF(root, root kind, RAND).
    Keyset {
        /// The root key, 32 octets hex.
        #[arg(long)]
        root: String,
        /// RAND, 16 octets hex.
        #[arg(long)]
        rand: String,
        /// Which solution's root this is.
        #[arg(long, value_enum, default_value_t)]
        root_kind: RootKindArg,
        /// KDF profile.
        #[arg(long, value_enum, default_value_t)]
        kdf: KdfArg,
    },
}

/// Runs `ciot-e2e kdf`.
pub fn kdf(a: &KdfArgs) -> Result<(), Failure> {
    let key = hex_bytes(&a.key).map_err(|e| Failure::usage(format!("--key: {e}")))?;
    let fc_octets = hex_bytes(&a.fc).map_err(|e| Failure::usage(format!("--fc: {e}")))?;
    let fc = Fc::from_octets(&fc_octets).map_err(|e| Failure::usage(format!("--fc: {e}")))?;
    let params = a
        .params
        .iter()
        .map(|p| hex_bytes(p).map_err(|e| Failure::usage(format!("--param: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&[u8]> = params.iter().map(Vec::as_slice).collect();
    let out = kdf::kdf(&key, fc, &refs).map_err(|e| Failure::usage(e.to_string()))?;
    crate::outln!("{}", hex::encode(out));
    Ok(())
}

/// Runs `ciot-e2e derive ...`.
pub fn derive(c: &DeriveCommand) -> Result<(), Failure> {
    match c {
        DeriveCommand::IntKey { ck, ik, kdf } => {
            let ck = Ck::from_bytes(hex_array("ck", ck).map_err(Failure::usage)?);
            let ik = Ik::from_bytes(hex_array("ik", ik).map_err(Failure::usage)?);
            let root = kdf::int_key((*kdf).into(), &CkIk::new(&ck, &ik));
            crate::outln!("{}", hex::encode(root.key().as_bytes()));
        }
        DeriveCommand::Keyset {
            root,
            rand,
            root_kind,
            kdf,
        } => {
            let root = RootKey::new(
                (*root_kind).into(),
                RootBytes::from_bytes(hex_array("root", root).map_err(Failure::usage)?),
            );
            let rand = Rand(hex_array("rand", rand).map_err(Failure::usage)?);
            let keyset = PreparedRoot::new(&root, (*kdf).into()).keyset(&rand);
            crate::outln!("{}", hex::encode(keyset.as_bytes()));
        }
    }
    Ok(())
}
