//! Reading key-log lines (docs/keylog.md): what is accepted, and for every
//! field the error that names it, with the line number.

use ciot_e2e::kdf::{
    AlgKey, KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind, UeNonce,
};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{Ksi, Suite};
use ciot_e2e_analyze::keylog::{
    KeyLog, KeyLogEntry, KeyLogWriter, format_entry, format_line, format_line_with_nonce,
};

const RAND: &str = "000102030405060708090a0b0c0d0e0f";
const K1: &str = "ffeeddccbbaa99887766554433221100";
const K2: &str = "00112233445566778899aabbccddeeff";
const NONCE: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

fn nonce() -> UeNonce {
    UeNonce::from_bytes(core::array::from_fn(|i| 0xf0 + i as u8))
}

fn rand() -> Rand {
    Rand(core::array::from_fn(|i| i as u8))
}

fn k1() -> AlgKey {
    AlgKey::from_bytes(core::array::from_fn(|i| 0xff - 0x11 * i as u8))
}

fn k2() -> AlgKey {
    AlgKey::from_bytes(core::array::from_fn(|i| 0x11 * i as u8))
}

/// The entries of a one-line log, or the error's text.
fn parse(line: &str) -> Result<Vec<KeyLogEntry>, String> {
    KeyLog::parse(line)
        .map(|log| log.entries().to_vec())
        .map_err(|e| e.to_string())
}

#[test]
fn both_suites_are_read_with_counter_or_dash() {
    assert_eq!(
        parse(&format!("CIOT_E2E_KEYSET 1 7 {RAND} aes-128-gcm {K1}")),
        Ok(vec![KeyLogEntry {
            ksi: Ksi(1),
            counter: Some(7),
            rand: rand(),
            keys: SuiteKeys::Aes128Gcm(k1()),
            nonce: None,
        }])
    );
    assert_eq!(
        parse(&format!("CIOT_E2E_KEYSET 255 - {RAND} nea2-nia2 {K1} {K2}")),
        Ok(vec![KeyLogEntry {
            ksi: Ksi(255),
            counter: None,
            rand: rand(),
            keys: SuiteKeys::Nea2Nia2 {
                enc: k1(),
                int: k2(),
            },
            nonce: None,
        }])
    );
}

#[test]
fn extremes_of_each_number_are_read() {
    let log = parse(&format!(
        "CIOT_E2E_KEYSET 0 18446744073709551615 {RAND} aes-128-gcm {K1}"
    ))
    .unwrap();
    assert_eq!((log[0].ksi, log[0].counter), (Ksi(0), Some(u64::MAX)));
    // Leading zeros are still decimal.
    let log = parse(&format!("CIOT_E2E_KEYSET 007 010 {RAND} aes-128-gcm {K1}")).unwrap();
    assert_eq!((log[0].ksi, log[0].counter), (Ksi(7), Some(10)));
}

#[test]
fn blanks_case_and_line_endings_are_tolerated() {
    let upper = K1.to_ascii_uppercase();
    let text = format!(
        "  CIOT_E2E_KEYSET\t1 \t 7  {RAND}\taes-128-gcm {upper}  \r\n\
         CIOT_E2E_KEYSET 2 8 {RAND} aes-128-gcm {K1}\r\n"
    );
    let log = KeyLog::parse(&text).unwrap();
    assert_eq!(log.entries().len(), 2);
    assert_eq!(log.entries()[0].keys, SuiteKeys::Aes128Gcm(k1()));
    assert_eq!(log.entries()[1].ksi, Ksi(2));
}

#[test]
fn comments_blank_lines_and_other_labels_are_skipped() {
    let text = format!(
        "# ciot-e2e key log v1\n\n   \n  # indented comment\n\
         OTHER_LABEL 1 2 3\n\
         CIOT_E2E_KEYSETS 1 7 {RAND} aes-128-gcm {K1}\n\
         ciot_e2e_keyset 1 7 {RAND} aes-128-gcm {K1}\n"
    );
    assert_eq!(parse(&text), Ok(vec![]));
}

#[test]
fn a_written_line_reads_back() {
    let keys = SuiteKeys::Nea2Nia2 {
        enc: k2(),
        int: k1(),
    };
    let line = format_line(Ksi(9), Some(300), &rand(), &keys);
    assert_eq!(
        line,
        format!("CIOT_E2E_KEYSET 9 300 {RAND} nea2-nia2 {K2} {K1}")
    );
    let entry = &parse(&line).unwrap()[0];
    assert_eq!((entry.ksi, entry.counter), (Ksi(9), Some(300)));
    assert_eq!(entry.keys, keys);
}

/// docs/keylog.md: an optional last word `nonce=<32 hex digits>` names the
/// UE start the keyset was made for; lines without it read as before.
#[test]
fn the_nonce_word_is_optional_and_read_after_the_keys() {
    assert_eq!(
        parse(&format!(
            "CIOT_E2E_KEYSET 1 7 {RAND} aes-128-gcm {K1} nonce={NONCE}"
        )),
        Ok(vec![KeyLogEntry {
            ksi: Ksi(1),
            counter: Some(7),
            rand: rand(),
            keys: SuiteKeys::Aes128Gcm(k1()),
            nonce: Some(nonce()),
        }])
    );
    let upper = NONCE.to_ascii_uppercase();
    let log = parse(&format!(
        "CIOT_E2E_KEYSET 2 - {RAND} nea2-nia2 {K1} {K2}\tnonce={upper}  "
    ))
    .unwrap();
    assert_eq!(log[0].nonce, Some(nonce()));
    assert_eq!(
        log[0].keys,
        SuiteKeys::Nea2Nia2 {
            enc: k1(),
            int: k2()
        }
    );
    // Written only when given; each form reads back to its entry.
    let keys = SuiteKeys::Aes128Gcm(k2());
    let with = format_line_with_nonce(Ksi(3), Some(1_025_024), &rand(), &keys, Some(&nonce()));
    assert_eq!(
        with,
        format!("CIOT_E2E_KEYSET 3 1025024 {RAND} aes-128-gcm {K2} nonce={NONCE}")
    );
    assert_eq!(
        format_line_with_nonce(Ksi(3), None, &rand(), &keys, None),
        format_line(Ksi(3), None, &rand(), &keys)
    );
    for line in [with, format_line(Ksi(3), None, &rand(), &keys)] {
        let entry = &parse(&line).unwrap()[0];
        assert_eq!(format_entry(entry), line);
    }
    let mut w = KeyLogWriter::new_insecure(Vec::new());
    w.append_with_nonce(Ksi(3), Some(1), &rand(), &keys, Some(&nonce()))
        .unwrap();
    w.append(Ksi(4), Some(2), &rand(), &keys).unwrap();
    let log = KeyLog::parse(std::str::from_utf8(&w.into_inner()).unwrap()).unwrap();
    assert_eq!(
        log.entries().iter().map(|e| e.nonce).collect::<Vec<_>>(),
        vec![Some(nonce()), None]
    );
}

/// What the nonce word is for: with the root, a line's RAND, counter and
/// nonce give its keys again (`SuiteKeys::derive`), so an analyzer holding
/// the root can check a line, and one holding only the line still decrypts.
#[test]
fn a_line_with_its_nonce_names_every_input_of_its_keys() {
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x42; 32]));
    let keyset = PreparedRoot::new(&root, KdfProfile::Ts33220).keyset(&rand());
    let keys =
        SuiteKeys::derive(KdfProfile::Ts33220, &keyset, Suite::NEA2_NIA2, 9, &nonce()).unwrap();
    let line = format_line_with_nonce(Ksi(1), Some(9), &rand(), &keys, Some(&nonce()));
    let e = &parse(&line).unwrap()[0];
    let again = SuiteKeys::derive(
        KdfProfile::Ts33220,
        &PreparedRoot::new(&root, KdfProfile::Ts33220).keyset(&e.rand),
        e.keys.suite(),
        e.counter.unwrap(),
        &e.nonce.unwrap(),
    )
    .unwrap();
    assert_eq!(again, e.keys);
    // Another start's nonce gives other keys.
    let other = SuiteKeys::derive(
        KdfProfile::Ts33220,
        &keyset,
        Suite::NEA2_NIA2,
        9,
        &UeNonce::from_bytes([0; 16]),
    )
    .unwrap();
    assert_ne!(other, e.keys);
}

#[test]
fn every_bad_field_is_named_with_its_line() {
    let long = format!("{RAND}00");
    let non_ascii = "0001020304050607é8090a0b0c0d0e0"; // 32 octets
    let cases: Vec<(String, String)> = vec![
        (
            "CIOT_E2E_KEYSET".into(),
            "expected: KSI, counter, RAND, suite, key(s)".into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 7 {RAND}"),
            "expected: KSI, counter, RAND, suite, key(s)".into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 256 7 {RAND} aes-128-gcm {K1}"),
            r#"KSI must be 0-255, got "256""#.into(),
        ),
        (
            format!("CIOT_E2E_KEYSET x 7 {RAND} aes-128-gcm {K1}"),
            r#"KSI must be 0-255, got "x""#.into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1x 7 {RAND} aes-128-gcm {K1}"),
            r#"KSI must be 0-255, got "1x""#.into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 -1 {RAND} aes-128-gcm {K1}"),
            r#"counter must be a number or -, got "-1""#.into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 18446744073709551616 {RAND} aes-128-gcm {K1}"),
            r#"counter must be a number or -, got "18446744073709551616""#.into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 -- {RAND} aes-128-gcm {K1}"),
            r#"counter must be a number or -, got "--""#.into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 7 {} aes-128-gcm {K1}", &RAND[..31]),
            "RAND must be 32 hex digits, got 31".into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 7 {long} aes-128-gcm {K1}"),
            "RAND must be 32 hex digits, got 34".into(),
        ),
        (
            format!(
                "CIOT_E2E_KEYSET 1 7 {} aes-128-gcm {K1}",
                RAND.replace('a', "g")
            ),
            format!("RAND is not hex: {:?}", RAND.replace('a', "g")),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 7 {non_ascii} aes-128-gcm {K1}"),
            format!("RAND is not hex: {non_ascii:?}"),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 7 {RAND} rc4 {K1}"),
            r#"unknown suite "rc4" (nea2-nia2 or aes-128-gcm)"#.into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 7 {RAND} aes-128-gcm {K1} {K2}"),
            "suite aes-128-gcm takes 1 key(s), got 2".into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 7 {RAND} nea2-nia2 {K1}"),
            "suite nea2-nia2 takes 2 key(s), got 1".into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 7 {RAND} nea2-nia2 {K1} {K2} {K2}"),
            "suite nea2-nia2 takes 2 key(s), got 3".into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 7 {RAND} nea2-nia2 {} {K2}", &K1[1..]),
            "NEA2 key must be 32 hex digits, got 31".into(),
        ),
        (
            format!(
                "CIOT_E2E_KEYSET 1 7 {RAND} nea2-nia2 {K1} {}",
                K2.replace('0', "o")
            ),
            format!("NIA2 key is not hex: {:?}", K2.replace('0', "o")),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 7 {RAND} aes-128-gcm 0x{}", &K1[2..]),
            format!("AES-128-GCM key is not hex: \"0x{}\"", &K1[2..]),
        ),
        (
            format!(
                "CIOT_E2E_KEYSET 1 7 {RAND} aes-128-gcm {K1} nonce={}",
                &NONCE[2..]
            ),
            "nonce must be 32 hex digits, got 30".into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 7 {RAND} aes-128-gcm {K1} nonce="),
            "nonce must be 32 hex digits, got 0".into(),
        ),
        (
            format!(
                "CIOT_E2E_KEYSET 1 7 {RAND} aes-128-gcm {K1} nonce={}",
                NONCE.replace('f', "x")
            ),
            format!("nonce is not hex: {:?}", NONCE.replace('f', "x")),
        ),
        (
            // The nonce word is the last one: keys after it are not keys.
            format!("CIOT_E2E_KEYSET 1 7 {RAND} aes-128-gcm nonce={NONCE} {K1}"),
            "the nonce=… word must be the last, once".into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 7 {RAND} nea2-nia2 {K1} nonce={NONCE}"),
            "suite nea2-nia2 takes 2 key(s), got 1".into(),
        ),
        (
            format!("CIOT_E2E_KEYSET 1 7 {RAND} aes-128-gcm {K1} nonce={NONCE} nonce={NONCE}"),
            "the nonce=… word must be the last, once".into(),
        ),
    ];
    for (line, reason) in cases {
        // A good line first: the error names the bad one, line 3.
        let text = format!("# key log\nCIOT_E2E_KEYSET 1 7 {RAND} aes-128-gcm {K1}\n{line}\n");
        let err = KeyLog::parse(&text).unwrap_err();
        assert_eq!(
            (err.line, err.reason.as_str()),
            (3, reason.as_str()),
            "{line}"
        );
        assert_eq!(err.to_string(), format!("key log line 3: {reason}"));
    }
}

#[test]
fn signed_numbers_are_not_decimal_fields() {
    // docs/keylog.md: decimal digits. A sign was let through before the
    // parser followed the format.
    assert_eq!(
        parse(&format!("CIOT_E2E_KEYSET +1 7 {RAND} aes-128-gcm {K1}")),
        Err(r#"key log line 1: KSI must be 0-255, got "+1""#.into())
    );
    assert_eq!(
        parse(&format!("CIOT_E2E_KEYSET 1 +7 {RAND} aes-128-gcm {K1}")),
        Err(r#"key log line 1: counter must be a number or -, got "+7""#.into())
    );
}

#[test]
fn the_first_bad_line_rejects_the_whole_file() {
    let text = format!(
        "CIOT_E2E_KEYSET 1 7 {RAND} aes-128-gcm {K1}\n\
         CIOT_E2E_KEYSET 1 7 {RAND} aes-128-gcm\n\
         CIOT_E2E_KEYSET 300 7 {RAND} aes-128-gcm {K1}\n"
    );
    let err = KeyLog::parse(&text).unwrap_err();
    assert_eq!(err.line, 2);
    assert_eq!(err.reason, "suite aes-128-gcm takes 1 key(s), got 0");
}
