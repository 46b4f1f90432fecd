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
use crate::args::{KdfArg, RootKindArg, hex_array, hex_bytes, ue_nonce};

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
    /// A derive trigger (EESE → UE), signed with the control key of --root
    /// bound to --nonce.
    Trigger {
        #[command(flatten)]
        root: RootArgs,
        /// The nonce of the UE start the trigger answers (from its hello),
        /// 16 octets hex. Not sent: the tag covers it.
        #[arg(long)]
        nonce: String,
        /// KSI of the new keyset (0-255).
        #[arg(long)]
        ksi: u8,
        /// Set CONFIRM: the EESE offers the keyset and sends nothing under
        /// it until the UE uses it (data under it, or a hello naming it).
        #[arg(long)]
        confirm: bool,
        /// RAND, 16 octets hex.
        #[arg(long)]
        rand: String,
        /// Trigger counter (strictly increasing per UE; within one start the
        /// UE accepts only a counter above the last it accepted).
        #[arg(long)]
        counter: u64,
        /// Key lifetime te2e in seconds (at least 1).
        #[arg(long, default_value_t = 3600)]
        lifetime: u32,
        /// Suite the new keyset protects data with.
        #[arg(long, value_enum, default_value_t)]
        suite: SuiteArg,
    },
    /// A key-expired error (EESE → UE), signed with the control key of
    /// --root bound to --nonce.
    KeyExpired {
        #[command(flatten)]
        root: RootArgs,
        /// The nonce of the UE start the error answers (from its hello), 16
        /// octets hex. Not sent: the tag covers it.
        #[arg(long)]
        nonce: String,
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
        /// The UE's nonce of this start (drawn at every start), 16 octets hex.
        #[arg(long)]
        nonce: String,
        /// UE identifier, 1 to 64 octets: text (its UTF-8 octets), or hex
        /// after `0x` (`0x75652d37`). An identifier whose text starts with
        /// `0x` must be given in hex.
        #[arg(long)]
        id: String,
        /// Highest trigger counter the UE accepted in this start (0 if none).
        #[arg(long)]
        counter: u64,
        /// Hello sequence number: 0 for the first hello of a UE start,
        /// then strictly increasing under the same nonce.
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

/// Whether an identifier reads as text: every octet ASCII graphic
/// (`0x21..=0x7e`; a space or a control octet makes it hex).
fn printable(id: &[u8]) -> bool {
    id.iter().all(u8::is_ascii_graphic)
}

/// Arguments of `ciot-e2e decode`.
#[derive(Args)]
pub struct DecodeArgs {
    /// The message, hex.
    hex: String,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Root key (32 octets hex): also verify a control message's tag (a
    /// trigger's or an error's needs --nonce as well).
    #[arg(long)]
    root: Option<String>,
    /// The nonce of the UE start a trigger or a key-expired error answers
    /// (from the hello it answers), 16 octets hex: their tags cover it. Not
    /// used for a hello, which carries its own.
    #[arg(long)]
    nonce: Option<String>,
    /// Which solution's root --root is.
    #[arg(long, value_enum, default_value_t)]
    root_kind: RootKindArg,
    /// KDF profile of the control key. A trigger's KDF octet is shown, not
    /// compared with it.
    #[arg(long, value_enum, default_value_t)]
    kdf: KdfArg,
}

/// Runs `ciot-e2e encode ...`.
pub fn encode(c: &EncodeCommand) -> Result<(), Failure> {
    let mut buf = [0u8; HelloRepr::MAX_LEN];
    let len = match c {
        EncodeCommand::Trigger {
            root,
            nonce,
            ksi,
            confirm,
            rand,
            counter,
            lifetime,
            suite,
        } => {
            if *lifetime == 0 {
                return Err(Failure::usage("--lifetime must be at least 1 second"));
            }
            let nonce = ue_nonce(nonce).map_err(Failure::usage)?;
            let auth = ControlAuth::new(&root.prepared()?.control_key());
            TriggerRepr {
                ksi: Ksi(*ksi),
                confirm: *confirm,
                counter: *counter,
                rand: Rand(hex_array("rand", rand).map_err(Failure::usage)?),
                profile: root.kdf.into(),
                suite: (*suite).into(),
                lifetime: *lifetime,
                tag: [0; 16],
            }
            .emit_signed(&auth.answer(&nonce), &mut buf)
        }
        EncodeCommand::KeyExpired {
            root,
            nonce,
            ksi,
            cause,
            counter,
            refused,
        } => {
            let nonce = ue_nonce(nonce).map_err(Failure::usage)?;
            let auth = ControlAuth::new(&root.prepared()?.control_key());
            KeyExpiredRepr {
                ksi: Ksi(*ksi),
                cause: (*cause).into(),
                counter: *counter,
                refused: *refused,
                tag: [0; 16],
            }
            .emit_signed(&auth.answer(&nonce), &mut buf)
        }
        EncodeCommand::Hello {
            root,
            nonce,
            id,
            counter,
            seq,
            rekey,
            ksi,
        } => {
            let nonce = ue_nonce(nonce).map_err(Failure::usage)?;
            let id = parse_id(id)?;
            let auth = ControlAuth::new(&root.prepared()?.control_key());
            HelloRepr {
                ksi: Ksi(*ksi),
                rekey: *rekey,
                counter: *counter,
                seq: *seq,
                nonce,
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
                ("confirm", json!(t.confirm), t.confirm.to_string()),
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
            (
                "nonce",
                json!(hex::encode(h.nonce.as_bytes())),
                hex::encode(h.nonce.as_bytes()),
            ),
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

/// What `decode --root` found out about a message's tag.
enum TagCheck {
    /// Checked: whether it holds.
    Done(bool),
    /// Not checked, and why (one sentence).
    NotDone(&'static str),
}

/// Why a trigger's or an error's tag was not checked without `--nonce`.
const NEEDS_NONCE: &str = "the tag covers the nonce of the UE start it answers: give --nonce";

/// Why a data message's tag is not checked by `decode`.
const NEEDS_KEYSET: &str = "a data tag needs the keyset: use `ciot-e2e unprotect`";

/// Runs `ciot-e2e decode`.
pub fn decode(a: &DecodeArgs) -> Result<(), Failure> {
    let nonce = a
        .nonce
        .as_deref()
        .map(ue_nonce)
        .transpose()
        .map_err(Failure::usage)?;
    let bytes = hex_bytes(&a.hex).map_err(Failure::rejected)?;
    let msg =
        Message::parse(&bytes).map_err(|e| Failure::rejected(format!("malformed message: {e}")))?;
    let check = match &a.root {
        None => None,
        Some(root) => {
            let auth = ControlAuth::new(&prepared_root(root, a.root_kind, a.kdf)?.control_key());
            Some(match (&msg, nonce) {
                (Message::Data(_), _) => TagCheck::NotDone(NEEDS_KEYSET),
                // A hello's tag is the control key's alone; its nonce is
                // in the message.
                (Message::Hello(_), _) => TagCheck::Done(auth.open_hello(&bytes).is_ok()),
                (_, Some(nonce)) => TagCheck::Done(auth.verify_message(&bytes, &nonce).is_ok()),
                (_, None) => TagCheck::NotDone(NEEDS_NONCE),
            })
        }
    };
    let fields = fields(&bytes, &msg);
    if a.json {
        let mut obj = serde_json::Map::new();
        obj.insert("length".into(), json!(bytes.len()));
        for (name, value, _) in &fields {
            obj.insert((*name).into(), value.clone());
        }
        match check {
            Some(TagCheck::Done(ok)) => {
                obj.insert("tag_valid".into(), json!(ok));
            }
            Some(TagCheck::NotDone(why)) => {
                obj.insert("tag_not_checked".into(), json!(why));
            }
            None => {}
        }
        crate::outln!("{}", Value::Object(obj));
    } else {
        crate::outln!("{} ({} octets)", msg.message_type(), bytes.len());
        for (name, _, text) in &fields {
            crate::outln!("  {name}: {text}");
        }
        match check {
            Some(TagCheck::Done(true)) => crate::outln!("  tag check: valid under the given root"),
            Some(TagCheck::Done(false)) => {
                crate::outln!("  tag check: INVALID under the given root");
            }
            Some(TagCheck::NotDone(why)) => crate::outln!("  tag check: not done ({why})"),
            None => {}
        }
    }
    match check {
        Some(TagCheck::Done(false)) => Err(Failure::rejected(
            "bad tag: the message is not authentic under this root",
        )),
        _ => Ok(()),
    }
}
