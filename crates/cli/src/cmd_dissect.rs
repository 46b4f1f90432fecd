//! `dissect`: every message of a pcap or pcapng capture, field by field.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;

use ciot_e2e::wire::{DEFAULT_PORT, MessageType};
use ciot_e2e_analyze::dissect::pcap::{CaptureError, CaptureReader, Frame, link_name};
use ciot_e2e_analyze::dissect::udp::{Found, find_message};
use ciot_e2e_analyze::dissect::{Dissection, Field, Finding, NonceLedger, Shown, Value};
use ciot_e2e_analyze::keylog::KeyLog;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::Failure;

/// Arguments of `ciot-e2e dissect`.
#[derive(Args)]
pub struct DissectArgs {
    /// A pcap or pcapng capture.
    file: PathBuf,
    /// One JSON object per message and a last one with the summary.
    #[arg(long)]
    json: bool,
    /// Also look for messages on this UDP port (repeatable); 33863 always.
    #[arg(long = "port")]
    ports: Vec<u16>,
    /// Key log (docs/keylog.md) to decrypt data messages with; give it
    /// more than once for the key logs of several endpoints (every
    /// instance of an EESE).
    #[arg(long)]
    keylog: Vec<PathBuf>,
}

/// Files from this size on get a progress bar (when stderr is a terminal).
const PROGRESS_FROM: u64 = 32 << 20;

/// Counts the octets read, for the progress bar.
struct Counting<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

#[derive(Default)]
struct Summary {
    frames: u64,
    messages: u64,
    malformed: u64,
    triggers: u64,
    key_expired: u64,
    data: u64,
    hellos: u64,
    unknown: u64,
    decrypted: u64,
    bad_tag: u64,
    /// Set when a key log was given: nonce-reuse findings.
    nonce_reuse: Option<u64>,
}

/// Runs `ciot-e2e dissect`.
pub fn dissect(a: &DissectArgs) -> Result<(), Failure> {
    let mut keys: Option<KeyLog> = None;
    for p in &a.keylog {
        let log = KeyLog::read(p).map_err(|e| Failure::usage(format!("{}: {e}", p.display())))?;
        match &mut keys {
            None => keys = Some(log),
            Some(all) => {
                for e in log.entries() {
                    all.push(e.clone());
                }
            }
        }
    }
    let file =
        File::open(&a.file).map_err(|e| Failure::usage(format!("{}: {e}", a.file.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = if size >= PROGRESS_FROM && io::stderr().is_terminal() {
        let bar = ProgressBar::new(size);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {eta}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let reader = Counting {
        inner: file,
        bar: bar.clone(),
    };
    let bad = |e: CaptureError| Failure::rejected(format!("{}: {e}", a.file.display()));
    let mut capture = CaptureReader::new(reader).map_err(bad)?;
    let mut ports = a.ports.clone();
    ports.push(DEFAULT_PORT);

    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut d = Dissection::new();
    let mut line: Vec<u8> = Vec::with_capacity(1 << 17);
    let mut sum = Summary::default();
    let mut ledger = NonceLedger::new();
    // Each field's display is written here, then escaped into the line.
    let mut scratch = String::with_capacity(256);
    let io_fail = |e: io::Error| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            // The reader went away (`ciot-e2e dissect … | head`): stop quietly.
            std::process::exit(0);
        }
        Failure::usage(format!("writing output: {e}"))
    };
    while let Some(frame) = capture.next_frame() {
        let frame = frame.map_err(bad)?;
        sum.frames += 1;
        let Some(found) = find_message(frame.link, frame.data, &ports) else {
            continue;
        };
        d.run(found.payload, keys.as_ref());
        let reuse = keys
            .as_ref()
            .and_then(|_| ledger.check(frame.number, found.payload, &d));
        sum.messages += 1;
        match d.message_type() {
            Some(MessageType::DERIVE_TRIGGER) => sum.triggers += 1,
            Some(MessageType::KEY_EXPIRED) => sum.key_expired += 1,
            Some(MessageType::DATA) => sum.data += 1,
            Some(MessageType::HELLO) => sum.hellos += 1,
            _ => sum.unknown += 1,
        }
        sum.malformed += u64::from(d.is_malformed());
        match d.tag_valid() {
            Some(true) => sum.decrypted += 1,
            Some(false) => sum.bad_tag += 1,
            None => {}
        }
        if a.json {
            json_message(&mut line, &frame, &found, &d, reuse.as_ref(), &mut scratch);
        } else {
            text_message(&mut line, &frame, &found, &d, reuse.as_ref());
        }
        // Written in large chunks; the buffer is reused.
        if line.len() >= 1 << 16 {
            out.write_all(&line).map_err(io_fail)?;
            line.clear();
        }
    }
    bar.finish_and_clear();
    if keys.is_some() {
        sum.nonce_reuse = Some(ledger.reused());
    }
    if a.json {
        json_summary(&mut line, &sum);
    } else {
        text_summary(&mut line, &sum, capture.format());
    }
    out.write_all(&line)
        .and_then(|()| out.flush())
        .map_err(io_fail)?;
    Ok(())
}

fn type_name(d: &Dissection) -> &'static str {
    match d.message_type() {
        Some(t) => t.name().unwrap_or("unknown"),
        None => "unknown",
    }
}

fn text_message(
    out: &mut Vec<u8>,
    frame: &Frame<'_>,
    found: &Found<'_>,
    d: &Dissection,
    extra: Option<&Finding>,
) {
    let msg = found.payload;
    let (secs, nanos) = (frame.time.as_secs(), frame.time.subsec_nanos());
    let _ = write!(out, "Frame {}  {secs}.{nanos:09}", frame.number);
    match (found.src, found.dst) {
        (Some(s), Some(t)) => {
            let _ = write!(out, "  {s} -> {t}");
        }
        _ => out.extend_from_slice(b"  (user0)"),
    }
    let _ = writeln!(
        out,
        "  {}, {} octets{}",
        type_name(d),
        msg.len(),
        if d.is_malformed() { ", MALFORMED" } else { "" }
    );
    for f in d.fields() {
        let indent = 2 + 2 * usize::from(f.depth);
        let _ = writeln!(
            out,
            "{:indent$}{}: {}  [{}+{}] {}",
            "",
            f.name,
            f.display(msg, d),
            f.offset,
            f.len,
            f.abbrev
        );
    }
    for x in d.findings().iter().chain(extra) {
        let _ = writeln!(
            out,
            "  ! {} ({}) at {}: {}",
            x.severity.as_str(),
            x.kind.as_str(),
            x.offset,
            x.message
        );
    }
}

fn text_summary(out: &mut Vec<u8>, s: &Summary, format: &str) {
    let _ = writeln!(
        out,
        "Summary ({format}): {} frames, {} messages, {} malformed",
        s.frames, s.messages, s.malformed
    );
    let _ = writeln!(out, "  derive-trigger: {}", s.triggers);
    let _ = writeln!(out, "  key-expired: {}", s.key_expired);
    let _ = writeln!(out, "  data: {}", s.data);
    let _ = writeln!(out, "  hello: {}", s.hellos);
    let _ = writeln!(out, "  unknown: {}", s.unknown);
    if s.decrypted + s.bad_tag > 0 {
        let _ = writeln!(out, "  decrypted: {}, bad tag: {}", s.decrypted, s.bad_tag);
    }
    if let Some(n) = s.nonce_reuse {
        let _ = writeln!(out, "  nonce-reuse: {n}");
    }
}

fn json_summary(out: &mut Vec<u8>, s: &Summary) {
    let _ = writeln!(
        out,
        "{{\"summary\":{{\"frames\":{},\"messages\":{},\"malformed\":{},\"types\":{{\"derive-trigger\":{},\"key-expired\":{},\"data\":{},\"hello\":{},\"unknown\":{}}},\"decrypted\":{},\"bad_tag\":{}}}}}",
        s.frames,
        s.messages,
        s.malformed,
        s.triggers,
        s.key_expired,
        s.data,
        s.hellos,
        s.unknown,
        s.decrypted,
        s.bad_tag
    );
    if let Some(n) = s.nonce_reuse {
        // Inside the summary object: drop the two closing braces and newline.
        out.truncate(out.len().saturating_sub(3));
        let _ = writeln!(out, ",\"nonce_reuse\":{n}}}}}");
    }
}

/// Writes a JSON string literal.
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    // Octet by octet: only `"`, `\` and control characters are escaped,
    // and no octet of a multi-octet UTF-8 sequence is one of them, so the
    // runs between them are copied whole.
    let b = s.as_bytes();
    let mut from = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            c if c < 0x20 => {
                out.extend_from_slice(b.get(from..i).unwrap_or_default());
                let _ = write!(out, "\\u{:04x}", c);
                from = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(b.get(from..i).unwrap_or_default());
        out.extend_from_slice(esc);
        from = i + 1;
    }
    out.extend_from_slice(b.get(from..).unwrap_or_default());
    out.push(b'"');
}

fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

/// Writes an unsigned integer in decimal (no formatting machinery).
fn num(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn json_addr(out: &mut Vec<u8>, a: Option<std::net::SocketAddr>) {
    match a {
        // The common case without the formatting machinery (it was a tenth
        // of `dissect --json`): the same text as `SocketAddr`'s Display.
        Some(std::net::SocketAddr::V4(a)) => {
            out.push(b'"');
            for (i, o) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                num(out, u64::from(o));
            }
            out.push(b':');
            num(out, u64::from(a.port()));
            out.push(b'"');
        }
        Some(a) => {
            let _ = write!(out, "\"{a}\"");
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn json_message(
    out: &mut Vec<u8>,
    frame: &Frame<'_>,
    found: &Found<'_>,
    d: &Dissection,
    extra: Option<&Finding>,
    scratch: &mut String,
) {
    let msg = found.payload;
    out.extend_from_slice(b"{\"frame\":");
    num(out, frame.number);
    out.extend_from_slice(b",\"time\":");
    num(out, frame.time.as_secs());
    let _ = write!(out, ".{:09}", frame.time.subsec_nanos());
    out.extend_from_slice(b",\"link\":\"");
    out.extend_from_slice(link_name(frame.link).as_bytes());
    out.extend_from_slice(b"\",\"src\":");
    json_addr(out, found.src);
    out.extend_from_slice(b",\"dst\":");
    json_addr(out, found.dst);
    out.extend_from_slice(b",\"length\":");
    num(out, msg.len() as u64);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(type_name(d).as_bytes());
    out.extend_from_slice(if d.is_malformed() {
        b"\",\"malformed\":true"
    } else {
        b"\",\"malformed\":false"
    });
    out.extend_from_slice(b",\"fields\":[");
    let fields = d.fields();
    let mut depth = 0u8;
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            if f.depth > depth {
                out.extend_from_slice(b",\"children\":[");
            } else {
                for _ in f.depth..depth {
                    out.extend_from_slice(b"}]");
                }
                out.extend_from_slice(b"},");
            }
        }
        depth = f.depth;
        json_field(out, f, msg, d, scratch);
    }
    if !fields.is_empty() {
        for _ in 0..depth {
            out.extend_from_slice(b"}]");
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"findings\":[");
    for (i, x) in d.findings().iter().chain(extra).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(
            out,
            "{{\"severity\":\"{}\",\"kind\":\"{}\",\"abbrev\":",
            x.severity.as_str(),
            x.kind.as_str()
        );
        match x.abbrev {
            Some(a) => json_str(out, a),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"offset\":");
        num(out, x.offset as u64);
        out.extend_from_slice(b",\"message\":");
        json_str(out, &x.message);
        out.push(b'}');
    }
    out.push(b']');
    if let Some(valid) = d.tag_valid() {
        out.extend_from_slice(if valid {
            b",\"tag_valid\":true"
        } else {
            b",\"tag_valid\":false"
        });
    }
    if let Some(p) = d.plaintext() {
        out.extend_from_slice(b",\"plaintext\":\"");
        hex(out, p);
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

/// Writes one field object without its closing brace (children may follow).
/// `display` is there only when it says more than `value` (a code point's
/// name, a unit, hex flags, a verdict).
fn json_field(out: &mut Vec<u8>, f: &Field, msg: &[u8], d: &Dissection, scratch: &mut String) {
    out.extend_from_slice(b"{\"abbrev\":\"");
    out.extend_from_slice(f.abbrev.as_bytes());
    out.extend_from_slice(b"\",\"name\":\"");
    out.extend_from_slice(f.name.as_bytes());
    out.extend_from_slice(b"\",\"offset\":");
    num(out, f.offset as u64);
    out.extend_from_slice(b",\"length\":");
    num(out, f.len as u64);
    if let Some(m) = f.mask {
        out.extend_from_slice(b",\"mask\":");
        num(out, u64::from(m));
    }
    out.extend_from_slice(b",\"value\":");
    match f.value {
        Value::Uint(v) => num(out, v),
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Bytes | Value::Plaintext => {
            out.push(b'"');
            hex(out, f.raw(msg, d));
            out.push(b'"');
        }
    }
    let plain = matches!(
        (f.value, f.shown),
        (
            Value::Uint(_) | Value::Bytes | Value::Plaintext,
            Shown::Plain
        )
    );
    if !plain {
        // A display may quote an identifier the message carries: escaped.
        out.extend_from_slice(b",\"display\":");
        let mut shown = std::mem::take(scratch);
        shown.clear();
        let _ = std::fmt::Write::write_fmt(&mut shown, format_args!("{}", f.display(msg, d)));
        json_str(out, &shown);
        *scratch = shown;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `json_str` writes parses back (as JSON) to the string it was
    /// given, for quotes, backslashes, every control character and
    /// multi-octet UTF-8 next to them.
    #[test]
    fn json_strings_read_back_as_they_were() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain".into(),
            "\"quoted\"".into(),
            "back\\slash".into(),
            "ünïcødé \u{1f600} \"\\\"".into(),
        ];
        cases.extend((0u8..0x20).map(|c| format!("a{}b\u{e9}", char::from(c))));
        for s in cases {
            let mut out = Vec::new();
            json_str(&mut out, &s);
            let back: String = serde_json::from_slice(&out)
                .unwrap_or_else(|e| panic!("{s:?} gave {:?}: {e}", String::from_utf8_lossy(&out)));
            assert_eq!(back, s);
        }
    }

    #[test]
    fn addresses_read_as_their_display() {
        for a in [
            "10.0.0.12:49163",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[::1]:33863",
        ] {
            let a: std::net::SocketAddr = a.parse().unwrap();
            let mut out = Vec::new();
            json_addr(&mut out, Some(a));
            assert_eq!(out, format!("\"{a}\"").into_bytes());
        }
    }
}
