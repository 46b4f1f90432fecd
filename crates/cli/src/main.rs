//! `ciot-e2e`: derive keys, encode/decode and protect messages, run endpoints,
//! and dissect captures of the CIoT end-to-end security protocol.
//!
//! Every hex argument is accepted in either case; every hex output is
//! lowercase on one line. Bad input exits non-zero with one line on stderr.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod args;
mod capture;
mod cmd_algo;
mod cmd_demo;
mod cmd_dissect;
mod cmd_genpcap;
mod cmd_kdf;
mod cmd_loadtest;
mod cmd_peer;
mod cmd_protect;
mod cmd_service;
mod cmd_sim;
mod cmd_wire;
mod net;

/// Command-line front end of the ciot-e2e crate.
#[derive(Parser)]
#[command(name = "ciot-e2e", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The raw TS 33.220 Annex B.2 KDF: HMAC-SHA-256(key, FC || P0 || L0 || ...).
    Kdf(cmd_kdf::KdfArgs),
    /// Run one UE and one EESE over UDP on loopback through the whole rekey cycle.
    Demo(cmd_demo::DemoArgs),
    /// Protect a payload as a data message under the keyset of --root and --rand.
    Protect(cmd_protect::ProtectArgs),
    /// Verify and decrypt a data message under the keyset of --root and --rand.
    Unprotect(cmd_protect::UnprotectArgs),
    /// Run an EESE over UDP: with --emks the service (roots from the EMKS, durable state, admin interface); else the single-root demo.
    Eese(cmd_peer::EeseArgs),
    /// Run a UE over UDP that sends numbered payloads and waits for each echo.
    Ue(cmd_peer::UeArgs),
    /// Load test: one EESE and many UEs over loopback UDP with loss, reordering and hostile input.
    Loadtest(cmd_loadtest::LoadtestArgs),
    /// Simulate an EESE and its UEs over an adversarial network with crashes; check the invariants.
    Sim(cmd_sim::SimArgs),
    /// Derive e2e_int_key or an e2eKEYSET.
    #[command(subcommand)]
    Derive(cmd_kdf::DeriveCommand),
    /// 128-NIA2 (TS 33.401 B.2.3): the 32-bit MAC of a message.
    Nia2(cmd_algo::Nia2Args),
    /// 128-NEA2 (TS 33.401 B.1.3): encrypt or decrypt data.
    Nea2(cmd_algo::Nea2Args),
    /// Encode a signed control message (derive trigger, key-expired error) as hex.
    #[command(subcommand)]
    Encode(cmd_wire::EncodeCommand),
    /// Decode any message from hex and print every field; --root also checks a control tag.
    Decode(cmd_wire::DecodeArgs),
    /// Dissect every message of a pcap or pcapng capture (UDP port 33863, --port, USER0).
    Dissect(cmd_dissect::DissectArgs),
    /// Write a synthetic capture of every message type, some malformed.
    GenPcap(cmd_genpcap::GenPcapArgs),
    /// A test PKI for the EMKS, the HSS and the EESE.
    #[command(subcommand)]
    Pki(cmd_service::PkiCommand),
    /// Run the EMKS (HTTPS, mutual TLS), or `emks provision` a UE's root as the HSS.
    Emks(cmd_service::EmksArgs),
    /// Ask an EESE's admin interface: expire keys, set te2e, show a session, send, metrics.
    Admin(cmd_service::AdminArgs),
}

/// Prints one line to stdout like `println!`, but ends the process quietly
/// (exit 0) when stdout was closed (`ciot-e2e demo | head`) instead of
/// panicking.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// A command's failure: the message for stderr and the exit code.
pub struct Failure {
    /// One line for stderr.
    pub message: String,
    /// Process exit code (1: bad arguments, 2: input rejected by the protocol).
    pub code: u8,
}

impl Failure {
    /// Bad command-line input (exit 1).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 1,
        }
    }

    /// Input the protocol rejects: malformed message, bad tag (exit 2).
    pub fn rejected(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 2,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Kdf(a) => cmd_kdf::kdf(&a),
        Command::Demo(a) => cmd_demo::demo(&a),
        Command::Protect(a) => cmd_protect::protect(&a),
        Command::Unprotect(a) => cmd_protect::unprotect(&a),
        Command::Eese(a) => cmd_peer::eese(&a),
        Command::Ue(a) => cmd_peer::ue(&a),
        Command::Loadtest(a) => cmd_loadtest::loadtest(&a),
        Command::Sim(a) => cmd_sim::sim(&a),
        Command::Derive(c) => cmd_kdf::derive(&c),
        Command::Nia2(a) => cmd_algo::nia2(&a),
        Command::Nea2(a) => cmd_algo::nea2(&a),
        Command::Encode(c) => cmd_wire::encode(&c),
        Command::Decode(a) => cmd_wire::decode(&a),
        Command::Dissect(a) => cmd_dissect::dissect(&a),
        Command::GenPcap(a) => cmd_genpcap::gen_pcap(&a),
        Command::Pki(c) => cmd_service::pki(&c),
        Command::Emks(a) => cmd_service::emks(&a),
        Command::Admin(a) => cmd_service::admin(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("ciot-e2e: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
