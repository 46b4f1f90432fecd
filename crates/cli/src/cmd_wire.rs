//! `encode` and `decode`: control messages to and from hex.

use ciot_e2e::kdf::{PreparedRoot, Rand, RootBytes, RootKey};
use ciot_e2e::wire::hello::MAX_ID_LEN;
use ciot_e2e::wire::{
    CONTROL_TAG_LEN, Cause, ControlAuth, HelloRepr, KeyExpiredRepr, Ksi, Message, Suite,
    TriggerRepr, header,
};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::Failure;
use crate::args::{KdfArg, RootKindArg, hex_array, hex_bytes};

/// `--suite nea2-nia2|aes-128-gcm`.
#[derive(Clone, Copy, Debug, ValueEnum, Default)]
pub enum SuiteArg {
    /// 128-NEA2 + 128-NIA2.
    #[value(name = "nea2-nia2")]
    Nea2Nia2,
    /// AES-128-GCM.
    #[default]
    #[value(name = "aes-128-gcm")]
    Aes128Gcm,
}

impl From<SuiteArg> for Suite {
    fn from(a: SuiteArg) -> Self {
        match a {
            SuiteArg::Nea2Nia2 => Suite::NEA2_NIA2,
            SuiteArg::Aes128Gcm => Suite::AES_128_GCM,
        }
    }
}

/// `--cause <name>`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CauseArg {
    /// Timer te2e ran out.
    Te2eExpired,
    /// The enterprise expired the keys.
    ExpiredByEnterprise,
    /// The EESE has no keyset with this KSI.
    UnknownKsi,
    /// A new AKA run replaced the root.
    RootReplaced,
    /// A newer keyset replaced it; the trigger follows.
    Replaced,
}

impl From<CauseArg> for Cause {
    fn from(a: CauseArg) -> Self {
        match a {
            CauseArg::Te2eExpired => Cause::TE2E_EXPIRED,
            CauseArg::ExpiredByEnterprise => Cause::EXPIRED_BY_ENTERPRISE,
            CauseArg::UnknownKsi => Cause::UNKNOWN_KSI,
            CauseArg::RootReplaced => Cause::ROOT_REPLACED,
            CauseArg::Replaced => Cause::REPLACED,
        }
    }
}

/// The root and how control keys are derived from it.
#[derive(Args, Clone)]
pub struct RootArgs {
    /// The root key (e2e_int_key, e2mKEYSET or e2m_key), 32 octets hex.
    #[arg(long)]
    pub root: String,
    /// Which solution's root this is.
    #[arg(long, value_enum, default_value_t)]
    pub root_kind: RootKindArg,
    /// KDF profile (also the profile of the control key).
    #[arg(long, value_enum, default_value_t)]
    pub kdf: KdfArg,
}

impl RootArgs {
    /// The prepared root.
    pub fn prepared(&self) -> Result<PreparedRoot, Failure> {
        prepared_root(&self.root, self.root_kind, self.kdf)
    }
}

/// Builds a prepared root from command-line values.
pub fn prepared_root(root: &str, kind: RootKindArg, kdf: KdfArg) -> Result<PreparedRoot, Failure> {
    let bytes = hex_array("root", root).map_err(Failure::usage)?;
    let root = RootKey::new(kind.into(), RootBytes::from_bytes(bytes));
    Ok(PreparedRoot::new(&root, kdf.into()))
}

/// `ciot-e2e encode ...`.
#[derive(Subcommand)]
pub enum EncodeCommand {
    /// A derive trigger (EESE → UE), signed with the control key of --root.
    Trigger {
        #[command(flatten)]
        root: RootArgs,
        /// KSI of the new keyset (0-255).
        #[arg(long)]
        ksi: u8,
        /// RAND, 16 octets hex.
        #[arg(long)]
        rand: String,
        /// Trigger counter (strictly increasing per root).
        #[arg(long)]
        counter: u64,
        /// Key lifetime te2e in seconds (at least 1).
        #[arg(long, default_value_t = 3600)]
        lifetime: u32,
        /// Suite the new keyset protects data with.
        #[arg(long, value_enum, default_value_t)]
        suite: SuiteArg,
    },
    /// A key-expired error (EESE → UE), signed with the control key of --root.
    KeyExpired {
        #[command(flatten)]
        root: RootArgs,
        /// The refused KSI.
        #[arg(long)]
        ksi: u8,
        /// Why it was refused.
        #[arg(long, value_enum)]
        cause: CauseArg,
        /// Trigger counter of the refused keyset (0 if none).
        #[arg(long, default_value_t = 0)]
        counter: u64,
        /// Sequence number of the refused message: sets NAMED, telling the UE
        /// that the EESE authenticated that message, found it fresh and did
        /// not deliver it, so it may send the payload again under the next
        /// keyset. Without it the error names no message (seq 0).
        #[arg(long)]
        refused: Option<u32>,
    },
    /// A hello (UE → EESE), signed with the control key of --root.
    Hello {
        #[command(flatten)]
        root: RootArgs,
        /// UE identifier, 1 to 64 octets: text (its UTF-8 octets), or hex
        /// after `0x` (`0x75652d37`).
        #[arg(long)]
        id: String,
        /// Highest trigger counter the UE accepted (0 if none).
        #[arg(long)]
        counter: u64,
        /// Hello sequence number (strictly increasing per UE and root).
        #[arg(long)]
        seq: u32,
        /// Set REKEY: the UE holds no keyset it can use and needs a new one.
        #[arg(long)]
        rekey: bool,
        /// The UE's current KSI (0 when it holds none).
        #[arg(long, default_value_t = 0)]
        ksi: u8,
    },
}

/// `--id`: text, or hex after `0x`; 1 to 64 octets.
fn parse_id(id: &str) -> Result<Vec<u8>, Failure> {
    let octets = match id.strip_prefix("0x") {
        Some(hex) => hex_bytes(hex).map_err(|e| Failure::usage(format!("--id: {e}")))?,
        None => id.as_bytes().to_vec(),
    };
    if !(1..=MAX_ID_LEN).contains(&octets.len()) {
        return Err(Failure::usage(format!(
            "--id must be 1 to {MAX_ID_LEN} octets, got {}",
            octets.len()
        )));
    }
    Ok(octets)
}

/// Whether an identifier reads as text: printable ASCII, space included.
fn printable(id: &[u8]) -> bool {
    id.iter().all(|b| (0x20..=0x7e).contains(b))
}

/// Arguments of `ciot-e2e decode`.
#[derive(Args)]
pub struct DecodeArgs {
    /// The message, hex.
    hex: String,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Root key (32 octets hex): also verify a control message's tag.
    #[arg(long)]
    root: Option<String>,
    /// Which solution's root --root is.
    #[arg(long, value_enum, default_value_t)]
    root_kind: RootKindArg,
    /// KDF profile of the control key.
    #[arg(long, value_enum, default_value_t)]
    kdf: KdfArg,
}

/// Runs `ciot-e2e encode ...`.
pub fn encode(c: &EncodeCommand) -> Result<(), Failure> {
    let mut buf = [0u8; HelloRepr::MAX_LEN];
    let len = match c {
        EncodeCommand::Trigger {
            root,
            ksi,
            rand,
            counter,
            lifetime,
            suite,
        } => {
            if *lifetime == 0 {
                return Err(Failure::usage("--lifetime must be at least 1 second"));
            }
            let auth = ControlAuth::new(&root.prepared()?.control_key());
            TriggerRepr {
                ksi: Ksi(*ksi),
                counter: *counter,
                rand: Rand(hex_array("rand", rand).map_err(Failure::usage)?),
                profile: root.kdf.into(),
                suite: (*suite).into(),
                lifetime: *lifetime,
                tag: [0; 16],
            }
            .emit_signed(&auth, &mut buf)
        }
        EncodeCommand::KeyExpired {
            root,
            ksi,
            cause,
            counter,
            refused,
        } => {
            let auth = ControlAuth::new(&root.prepared()?.control_key());
            KeyExpiredRepr {
                ksi: Ksi(*ksi),
                cause: (*cause).into(),
                counter: *counter,
                refused: *refused,
                tag: [0; 16],
            }
            .emit_signed(&auth, &mut buf)
        }
        EncodeCommand::Hello {
            root,
            id,
            counter,
            seq,
            rekey,
            ksi,
        } => {
            let id = parse_id(id)?;
            let auth = ControlAuth::new(&root.prepared()?.control_key());
            HelloRepr {
                ksi: Ksi(*ksi),
                rekey: *rekey,
                counter: *counter,
                seq: *seq,
                id: &id,
                tag: [0; 16],
            }
            .emit_signed(&auth, &mut buf)
        }
    }
    .map_err(|e| Failure::usage(e.to_string()))?;
    crate::outln!("{}", hex::encode(&buf[..len]));
    Ok(())
}

/// The fields of a decoded message, in wire order, as (name, JSON value, text).
pub fn fields(bytes: &[u8], msg: &Message<'_>) -> Vec<(&'static str, Value, String)> {
    let mut out = vec![
        (
            "version",
            json!(bytes[header::VERSION]),
            bytes[header::VERSION].to_string(),
        ),
        (
            "type",
            json!(msg.message_type().name()),
            format!("{:?} ({:#04x})", msg.message_type(), msg.message_type().0),
        ),
    ];
    match msg {
        Message::Trigger(t) => {
            let p = t.profile;
            out.extend([
                ("ksi", json!(t.ksi.0), t.ksi.to_string()),
                ("counter", json!(t.counter), t.counter.to_string()),
                ("rand", json!(hex::encode(t.rand.0)), hex::encode(t.rand.0)),
                (
                    "kdf",
                    json!(p.name()),
                    format!("{} ({:#04x})", p.name(), p.code()),
                ),
                (
                    "suite",
                    json!(t.suite.name()),
                    format!("{} ({:#04x})", t.suite, t.suite.0),
                ),
                ("lifetime", json!(t.lifetime), format!("{} s", t.lifetime)),
                ("tag", json!(hex::encode(t.tag)), hex::encode(t.tag)),
            ]);
        }
        Message::KeyExpired(k) => out.extend([
            ("ksi", json!(k.ksi.0), k.ksi.to_string()),
            (
                "named",
                json!(k.refused.is_some()),
                k.refused.is_some().to_string(),
            ),
            (
                "cause",
                json!(k.cause.name()),
                format!("{} ({:#04x})", k.cause, k.cause.0),
            ),
            ("counter", json!(k.counter), k.counter.to_string()),
            (
                "seq",
                json!(k.refused.unwrap_or(0)),
                k.refused.unwrap_or(0).to_string(),
            ),
            (
                "refused",
                json!(k.refused),
                k.refused.map_or("none".to_string(), |s| format!("seq {s}")),
            ),
            ("tag", json!(hex::encode(k.tag)), hex::encode(k.tag)),
        ]),
        Message::Hello(h) => out.extend([
            ("ksi", json!(h.ksi.0), h.ksi.to_string()),
            ("rekey", json!(h.rekey), h.rekey.to_string()),
            ("counter", json!(h.counter), h.counter.to_string()),
            ("seq", json!(h.seq), h.seq.to_string()),
            ("id_length", json!(h.id.len()), h.id.len().to_string()),
            ("id", json!(hex::encode(h.id)), id_text(h.id)),
            (
                "padding",
                json!(hello_padding(h)),
                format!("{} zero octets", hello_padding(h)),
            ),
            ("tag", json!(hex::encode(h.tag)), hex::encode(h.tag)),
        ]),
        Message::Data(d) => out.extend([
            ("ksi", json!(d.ksi.0), d.ksi.to_string()),
            (
                "direction",
                json!(d.direction.name()),
                d.direction.name().to_string(),
            ),
            (
                "suite",
                json!(d.suite.name()),
                format!("{} ({:#04x})", d.suite, d.suite.0),
            ),
            ("seq", json!(d.seq), d.seq.to_string()),
            (
                "ciphertext",
                json!(hex::encode(d.ciphertext)),
                format!(
                    "{} ({} octets)",
                    hex::encode(d.ciphertext),
                    d.ciphertext.len()
                ),
            ),
            ("tag", json!(hex::encode(d.tag)), hex::encode(d.tag)),
        ]),
    }
    out
}

/// An identifier as `decode` shows it: quoted text when printable, else hex.
fn id_text(id: &[u8]) -> String {
    match std::str::from_utf8(id) {
        Ok(text) if printable(id) => format!("{text:?} ({} octets)", id.len()),
        _ => format!("{} ({} octets)", hex::encode(id), id.len()),
    }
}

/// Zero octets between a hello's identifier and its tag.
fn hello_padding(h: &HelloRepr<'_>) -> usize {
    h.buffer_len() - ciot_e2e::wire::hello::field::ID - h.id.len() - CONTROL_TAG_LEN
}

/// Runs `ciot-e2e decode`.
pub fn decode(a: &DecodeArgs) -> Result<(), Failure> {
    let bytes = hex_bytes(&a.hex).map_err(Failure::rejected)?;
    let msg =
        Message::parse(&bytes).map_err(|e| Failure::rejected(format!("malformed message: {e}")))?;
    let tag_ok = match &a.root {
        None => None,
        Some(root) => {
            let auth = ControlAuth::new(&prepared_root(root, a.root_kind, a.kdf)?.control_key());
            match msg {
                Message::Data(_) => None,
                _ => Some(auth.verify_message(&bytes).is_ok()),
            }
        }
    };
    let fields = fields(&bytes, &msg);
    if a.json {
        let mut obj = serde_json::Map::new();
        obj.insert("length".into(), json!(bytes.len()));
        for (name, value, _) in &fields {
            obj.insert((*name).into(), value.clone());
        }
        if let Some(ok) = tag_ok {
            obj.insert("tag_valid".into(), json!(ok));
        }
        crate::outln!("{}", Value::Object(obj));
    } else {
        crate::outln!("{} ({} octets)", msg.message_type(), bytes.len());
        for (name, _, text) in &fields {
            crate::outln!("  {name}: {text}");
        }
        match (tag_ok, &msg, &a.root) {
            (Some(true), _, _) => crate::outln!("  tag check: valid under the given root"),
            (Some(false), _, _) => crate::outln!("  tag check: INVALID under the given root"),
            (None, Message::Data(_), Some(_)) => {
                crate::outln!(
                    "  tag check: not done (a data tag needs the keyset: use `ciot-e2e unprotect`)"
                )
            }
            _ => {}
        }
    }
    match tag_ok {
        Some(false) => Err(Failure::rejected(
            "bad tag: the message is not authentic under this root",
        )),
        _ => Ok(()),
    }
}
