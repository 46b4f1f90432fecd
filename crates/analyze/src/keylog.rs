//! Key log: the data-protection keys of each keyset, written to a text file
//! so that an analyzer can decrypt a capture (like TLS's `SSLKEYLOGFILE`).
//! The format is documented in `docs/keylog.md`:
//!
//! ```text
//! # ciot-e2e key log
//! CIOT_E2E_KEYSET <ksi> <counter|-> <rand> aes-128-gcm <key> [nonce=<UE nonce>]
//! CIOT_E2E_KEYSET <ksi> <counter|-> <rand> nea2-nia2 <enc key> <int key> [nonce=<UE nonce>]
//! ```
//!
//! The keys decrypt on their own; the optional last word names the UE
//! start (the nonce of its hello) the keyset was made for, the one input of
//! the algorithm keys besides the root that a line would not otherwise hold.
//!
//! **A key log defeats the protection of every message it covers.** It is
//! never written unless a caller asks with [`KeyLogFile::create_insecure`]
//! or [`KeyLogWriter::new_insecure`]; nothing in the crate enables it by
//! configuration or environment.
//!
//! ```
//! use ciot_e2e_analyze::keylog::{KeyLog, KeyLogWriter};
//! use ciot_e2e::kdf::{AlgKey, Rand};
//! use ciot_e2e::protect::suite::SuiteKeys;
//! use ciot_e2e::wire::Ksi;
//!
//! let keys = SuiteKeys::Aes128Gcm(AlgKey::from_bytes([7; 16]));
//! let mut w = KeyLogWriter::new_insecure(Vec::new());
//! w.append(Ksi(1), Some(1), &Rand([0x42; 16]), &keys)?;
//! let text = String::from_utf8(w.into_inner()).unwrap();
//! let log = KeyLog::parse(&text)?;
//! assert_eq!(log.entries()[0].keys, keys);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::string::String;
use std::vec::Vec;

use ciot_e2e::kdf::{AlgKey, Rand, UeNonce};
use ciot_e2e::protect::suite::{SuiteCipher, SuiteKeys};
use ciot_e2e::wire::{Ksi, Suite};
use nom::branch::alt;
use nom::bytes::complete::{take_till1, take_while_m_n, take_while1};
use nom::character::complete::{char, u8 as dec_u8, u64 as dec_u64};
use nom::combinator::{all_consuming, map_res, value};
use nom::multi::{fill, many0};
use nom::sequence::preceded;
use nom::{IResult, Parser};

/// The label that starts every keyset line.
pub const LABEL: &str = "CIOT_E2E_KEYSET";

/// What starts the optional last word of a keyset line: the UE nonce.
pub const NONCE_PREFIX: &str = "nonce=";

/// The first line a writer puts in an empty file.
pub const HEADER: &str = "# ciot-e2e key log v1: see docs/keylog.md. SECRET: decrypts traffic.";

/// One keyset of a key log.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeyLogEntry {
    /// The keyset's KSI.
    pub ksi: Ksi,
    /// The trigger counter that installed it, when the writer knew it.
    pub counter: Option<u64>,
    /// The keyset's RAND.
    pub rand: Rand,
    /// Its algorithm keys (which name the suite).
    pub keys: SuiteKeys,
    /// The nonce of the UE start the keyset was made for (P3 of its
    /// algorithm keys), when the writer knew it. Not needed to decrypt.
    pub nonce: Option<UeNonce>,
}

/// Why a key log could not be read: the line (from 1) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key log line {line}: {reason}")]
pub struct KeyLogError {
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Formats one keyset line (without the newline), without the nonce word.
#[must_use]
pub fn format_line(ksi: Ksi, counter: Option<u64>, rand: &Rand, keys: &SuiteKeys) -> String {
    format_line_with_nonce(ksi, counter, rand, keys, None)
}

/// Formats one keyset line (without the newline); with a nonce, the line
/// ends with the word `nonce=<32 hex digits>`.
#[must_use]
pub fn format_line_with_nonce(
    ksi: Ksi,
    counter: Option<u64>,
    rand: &Rand,
    keys: &SuiteKeys,
    nonce: Option<&UeNonce>,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(160);
    let _ = write!(s, "{LABEL} {} ", ksi.0);
    match counter {
        Some(c) => {
            let _ = write!(s, "{c}");
        }
        None => s.push('-'),
    }
    s.push(' ');
    hex_into(&mut s, &rand.0);
    let _ = write!(s, " {}", keys.suite());
    match keys {
        SuiteKeys::Nea2Nia2 { enc, int } => {
            s.push(' ');
            hex_into(&mut s, enc.as_bytes());
            s.push(' ');
            hex_into(&mut s, int.as_bytes());
        }
        SuiteKeys::Aes128Gcm(k) => {
            s.push(' ');
            hex_into(&mut s, k.as_bytes());
        }
    }
    if let Some(n) = nonce {
        s.push(' ');
        s.push_str(NONCE_PREFIX);
        hex_into(&mut s, n.as_bytes());
    }
    s
}

/// Formats an entry as its line (without the newline).
#[must_use]
pub fn format_entry(entry: &KeyLogEntry) -> String {
    format_line_with_nonce(
        entry.ksi,
        entry.counter,
        &entry.rand,
        &entry.keys,
        entry.nonce.as_ref(),
    )
}

fn hex_into(s: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

// A keyset line, parsed with nom: the line is split into its words first
// (their number varies with the suite), then each word is parsed whole by
// the parser of its field, so that an error names the field and the word.

/// Blanks between words: what `split_ascii_whitespace` splits on.
fn blank(input: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c.is_ascii_whitespace()).parse(input)
}

/// One word: a run of non-blank characters.
fn word(input: &str) -> IResult<&str, &str> {
    take_till1(|c: char| c.is_ascii_whitespace()).parse(input)
}

/// The words of a keyset line after its label.
struct Words<'a> {
    ksi: &'a str,
    counter: &'a str,
    rand: &'a str,
    suite: &'a str,
    keys: Vec<&'a str>,
}

fn words(input: &str) -> IResult<&str, Words<'_>> {
    let next = || preceded(blank, word);
    all_consuming((next(), next(), next(), next(), many0(next())))
        .map(|(ksi, counter, rand, suite, keys)| Words {
            ksi,
            counter,
            rand,
            suite,
            keys,
        })
        .parse(input)
}

/// Runs `parser` on the whole of `word`: `None` unless it takes every
/// character.
fn whole<'a, O>(
    parser: impl Parser<&'a str, Output = O, Error = nom::error::Error<&'a str>>,
    word: &'a str,
) -> Option<O> {
    all_consuming(parser).parse(word).ok().map(|(_, o)| o)
}

/// The trigger counter: a decimal u64, or `-` when the writer did not know it.
fn counter(input: &str) -> IResult<&str, Option<u64>> {
    alt((value(None, char('-')), dec_u64.map(Some))).parse(input)
}

/// One octet as two hex digits, either case.
fn hex_octet(input: &str) -> IResult<&str, u8> {
    map_res(
        take_while_m_n(2, 2, |c: char| c.is_ascii_hexdigit()),
        |pair| u8::from_str_radix(pair, 16),
    )
    .parse(input)
}

fn unhex<const N: usize>(what: &str, s: &str) -> Result<[u8; N], String> {
    if s.len() != 2 * N {
        return Err(std::format!(
            "{what} must be {} hex digits, got {}",
            2 * N,
            s.len()
        ));
    }
    let mut out = [0u8; N];
    whole(fill(hex_octet, &mut out), s).ok_or_else(|| std::format!("{what} is not hex: {s:?}"))?;
    Ok(out)
}

/// Parses one keyset line (what follows the label, blanks included).
fn parse_entry(rest: &str) -> Result<KeyLogEntry, String> {
    let Ok((_, w)) = words(rest) else {
        return Err("expected: KSI, counter, RAND, suite, key(s)".into());
    };
    let ksi =
        whole(dec_u8, w.ksi).ok_or_else(|| std::format!("KSI must be 0-255, got {:?}", w.ksi))?;
    let counter = whole(counter, w.counter)
        .ok_or_else(|| std::format!("counter must be a number or -, got {:?}", w.counter))?;
    let rand = Rand(unhex::<16>("RAND", w.rand)?);
    // The nonce word, if any, is the last; the suite says how many keys
    // come before it.
    let nonce_word = w
        .keys
        .split_last()
        .and_then(|(last, keys)| Some((keys, last.strip_prefix(NONCE_PREFIX)?)));
    let (key_words, nonce) = match nonce_word {
        Some((keys, hex)) => (keys, Some(UeNonce(unhex::<16>("nonce", hex)?))),
        None => (w.keys.as_slice(), None),
    };
    if key_words.iter().any(|k| k.starts_with(NONCE_PREFIX)) {
        return Err(std::format!(
            "the {NONCE_PREFIX}… word must be the last, once"
        ));
    }
    let keys = match (Suite::from_name(w.suite), key_words) {
        (Some(Suite::NEA2_NIA2), [enc, int]) => SuiteKeys::Nea2Nia2 {
            enc: AlgKey::from_bytes(unhex::<16>("NEA2 key", enc)?),
            int: AlgKey::from_bytes(unhex::<16>("NIA2 key", int)?),
        },
        (Some(Suite::AES_128_GCM), [key]) => {
            SuiteKeys::Aes128Gcm(AlgKey::from_bytes(unhex::<16>("AES-128-GCM key", key)?))
        }
        (Some(s), k) => {
            return Err(std::format!(
                "suite {s} takes {} key(s), got {}",
                if s == Suite::NEA2_NIA2 { 2 } else { 1 },
                k.len()
            ));
        }
        (None, _) => {
            return Err(std::format!(
                "unknown suite {:?} (nea2-nia2 or aes-128-gcm)",
                w.suite
            ));
        }
    };
    Ok(KeyLogEntry {
        ksi: Ksi(ksi),
        counter,
        rand,
        keys,
        nonce,
    })
}

/// A key log read into memory, indexed by KSI, with each keyset's ciphers
/// expanded once.
#[derive(Clone, Default)]
pub struct KeyLog {
    entries: Vec<KeyLogEntry>,
    ciphers: Vec<SuiteCipher>,
    /// Entry indices per KSI, newest first.
    by_ksi: Vec<Vec<usize>>,
}

impl core::fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KeyLog({} keysets)", self.entries.len())
    }
}

impl KeyLog {
    /// An empty key log.
    #[must_use]
    pub fn new() -> Self {
        KeyLog {
            entries: Vec::new(),
            ciphers: Vec::new(),
            by_ksi: std::vec![Vec::new(); 256],
        }
    }

    /// Parses a key log. Blank lines and lines starting with `#` are
    /// skipped, and so are lines with another label (room for future
    /// kinds of entries).
    ///
    /// # Errors
    /// [`KeyLogError`] naming the first bad keyset line.
    pub fn parse(text: &str) -> Result<Self, KeyLogError> {
        let mut log = KeyLog::new();
        // Splitting lines and trimming them is no parsing: std's `lines`
        // (which drops a `\r` before the `\n`) and `trim` do it.
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The first word is the label; another label is skipped.
            let Ok((rest, label)) = word(line) else {
                continue;
            };
            if label != LABEL {
                continue;
            }
            let entry = parse_entry(rest).map_err(|reason| KeyLogError {
                line: i + 1,
                reason,
            })?;
            log.push(entry);
        }
        Ok(log)
    }

    /// Reads and parses a key log file.
    ///
    /// # Errors
    /// The read error, or the parse error as `InvalidData`.
    pub fn read(path: &Path) -> io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Self::parse(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Adds a keyset.
    pub fn push(&mut self, entry: KeyLogEntry) {
        if self.by_ksi.len() < 256 {
            self.by_ksi = std::vec![Vec::new(); 256];
        }
        let i = self.entries.len();
        self.ciphers.push(entry.keys.cipher());
        if let Some(slot) = self.by_ksi.get_mut(usize::from(entry.ksi.0)) {
            slot.insert(0, i);
        }
        self.entries.push(entry);
    }

    /// Every keyset, in file order.
    #[must_use]
    pub fn entries(&self) -> &[KeyLogEntry] {
        &self.entries
    }

    /// Whether the log holds no keyset.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keysets for a KSI and suite, newest first: after the KSI wrapped
    /// around several may share it, so try each until a tag verifies.
    pub fn candidates(&self, ksi: Ksi, suite: Suite) -> impl Iterator<Item = &KeyLogEntry> + '_ {
        self.indices(ksi, suite).filter_map(|i| self.entries.get(i))
    }

    /// The expanded ciphers of [`KeyLog::candidates`].
    pub fn ciphers(&self, ksi: Ksi, suite: Suite) -> impl Iterator<Item = &SuiteCipher> + '_ {
        self.indices(ksi, suite).filter_map(|i| self.ciphers.get(i))
    }

    fn indices(&self, ksi: Ksi, suite: Suite) -> impl Iterator<Item = usize> + '_ {
        self.by_ksi
            .get(usize::from(ksi.0))
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(move |&i| self.entries.get(i).is_some_and(|e| e.keys.suite() == suite))
    }
}

/// Writes key log lines to any writer, one line per keyset, flushed at once.
#[derive(Debug)]
pub struct KeyLogWriter<W: Write> {
    w: W,
}

impl<W: Write> KeyLogWriter<W> {
    /// A key log writer. The name says it: whoever reads the output can
    /// decrypt every message of the keysets written.
    pub fn new_insecure(w: W) -> Self {
        KeyLogWriter { w }
    }

    /// Writes one keyset: call it on `Event::Rekeyed` with the endpoint's
    /// `current_keys()`. Without the nonce word (see
    /// [`KeyLogWriter::append_with_nonce`]).
    ///
    /// # Errors
    /// Write errors.
    pub fn append(
        &mut self,
        ksi: Ksi,
        counter: Option<u64>,
        rand: &Rand,
        keys: &SuiteKeys,
    ) -> io::Result<()> {
        self.append_with_nonce(ksi, counter, rand, keys, None)
    }

    /// Writes one keyset with the nonce of the UE start it was made for
    /// (the UE's `nonce()`; at the EESE, the nonce of the hello the
    /// keyset's trigger answered), when known.
    ///
    /// # Errors
    /// Write errors.
    pub fn append_with_nonce(
        &mut self,
        ksi: Ksi,
        counter: Option<u64>,
        rand: &Rand,
        keys: &SuiteKeys,
        nonce: Option<&UeNonce>,
    ) -> io::Result<()> {
        let mut line = format_line_with_nonce(ksi, counter, rand, keys, nonce);
        line.push('\n');
        self.w.write_all(line.as_bytes())?;
        self.w.flush()
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.w
    }
}

/// A key log file, opened for appending.
#[derive(Debug)]
pub struct KeyLogFile {
    w: KeyLogWriter<File>,
}

impl KeyLogFile {
    /// Opens `path` for appending (creating it, readable by its owner only
    /// on Unix) and writes [`HEADER`] if it is empty. Insecure by design:
    /// the file decrypts the traffic of every keyset appended.
    ///
    /// # Errors
    /// Open and write errors.
    pub fn create_insecure(path: &Path) -> io::Result<Self> {
        let mut opts = OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(path)?;
        if file.metadata()?.len() == 0 {
            writeln!(file, "{HEADER}")?;
        }
        Ok(KeyLogFile {
            w: KeyLogWriter::new_insecure(file),
        })
    }

    /// Appends one keyset (see [`KeyLogWriter::append`]).
    ///
    /// # Errors
    /// Write errors.
    pub fn append(
        &mut self,
        ksi: Ksi,
        counter: Option<u64>,
        rand: &Rand,
        keys: &SuiteKeys,
    ) -> io::Result<()> {
        self.w.append(ksi, counter, rand, keys)
    }

    /// Appends one keyset with its UE nonce (see
    /// [`KeyLogWriter::append_with_nonce`]).
    ///
    /// # Errors
    /// Write errors.
    pub fn append_with_nonce(
        &mut self,
        ksi: Ksi,
        counter: Option<u64>,
        rand: &Rand,
        keys: &SuiteKeys,
        nonce: Option<&UeNonce>,
    ) -> io::Result<()> {
        self.w.append_with_nonce(ksi, counter, rand, keys, nonce)
    }
}
