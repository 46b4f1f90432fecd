//! Published vectors for 128-NEA2, 128-NIA2, AES-CMAC (RFC 4493) and
//! AES-128-GCM run through the library, plus tamper, replay and key-use
//! tests. A failure names the vector.

use ciot_e2e::kdf::AlgKey;
use ciot_e2e::protect::Error;
use ciot_e2e::protect::aes_gcm::{Gcm, nonce};
use ciot_e2e::protect::nea2_nia2::{AesCmac, Nea2, Nia2, nea2, nia2};
use ciot_e2e::protect::replay::{DEFAULT_SOFT_LIMIT, ReplayWindow, SendCounter};
use serde_json::Value;

fn algo_vectors() -> Value {
    serde_json::from_str(include_str!("data/nea2-nia2.json"))
        .expect("tests/data/nea2-nia2.json parses")
}

fn gcm_vectors() -> Value {
    serde_json::from_str(include_str!("data/aes-128-gcm.json"))
        .expect("tests/data/aes-128-gcm.json parses")
}

fn hex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn cases<'a>(all: &'a Value, table: &str, at_least: usize) -> &'a [Value] {
    let cases = all[table]
        .as_array()
        .unwrap_or_else(|| panic!("table {table} is an array"));
    assert!(
        cases.len() >= at_least,
        "table {table} has {} vectors, expected at least {at_least}",
        cases.len()
    );
    cases
}

fn name(case: &Value) -> &str {
    case["name"].as_str().expect("vector has a name")
}

fn key(case: &Value) -> AlgKey {
    AlgKey::from_slice(&hex(&case["key"])).unwrap_or_else(|e| panic!("{}: key: {e}", name(case)))
}

/// COUNT, BEARER, DIRECTION and LENGTH of a 3GPP vector.
fn inputs(case: &Value) -> (u32, u8, u8, usize) {
    let count: [u8; 4] = hex(&case["count"]).try_into().expect("COUNT is 4 octets");
    let small = |field: &str| u8::try_from(case[field].as_u64().expect("number")).expect("fits u8");
    let bits =
        usize::try_from(case["length_bits"].as_u64().expect("length_bits")).expect("fits usize");
    (
        u32::from_be_bytes(count),
        small("bearer"),
        small("direction"),
        bits,
    )
}

#[test]
fn nia2_matches_every_published_vector() {
    let all = algo_vectors();
    let mut unaligned = 0;
    for case in cases(&all, "nia2", 4) {
        let name = name(case);
        let (count, bearer, direction, bits) = inputs(case);
        let message = hex(&case["message"]);
        let want: [u8; 4] = hex(&case["mac"]).try_into().expect("MAC is 4 octets");
        unaligned += usize::from(bits % 8 != 0);

        assert_eq!(
            nia2(&key(case), count, bearer, direction, &message, bits),
            Ok(want),
            "vector {name}"
        );
        let prepared = Nia2::new(&key(case));
        for _ in 0..2 {
            assert_eq!(
                prepared.mac(count, bearer, direction, &message, bits),
                Ok(want),
                "vector {name} (prepared)"
            );
        }
        assert_eq!(
            prepared.verify(count, bearer, direction, &message, bits, &want),
            Ok(()),
            "vector {name}"
        );
    }
    assert!(
        unaligned >= 2,
        "the table must keep its non-byte-aligned sets (1 and 3)"
    );
}

#[test]
fn nea2_matches_every_published_vector_both_ways() {
    let all = algo_vectors();
    for case in cases(&all, "nea2", 2) {
        let name = name(case);
        let (count, bearer, direction, bits) = inputs(case);
        let plaintext = hex(&case["plaintext"]);
        let ciphertext = hex(&case["ciphertext"]);
        assert_ne!(
            bits % 8,
            0,
            "vector {name}: the NEA2 sets are the unaligned ones"
        );

        let mut buf = plaintext.clone();
        nea2(&key(case), count, bearer, direction, &mut buf, bits)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex::encode(&buf),
            hex::encode(&ciphertext),
            "vector {name}: encrypt"
        );

        // Unused trailing input bits do not matter and come out as zero.
        let mut buf = plaintext.clone();
        if let Some(last) = buf.last_mut() {
            *last |= 0xff >> (bits % 8);
        }
        nea2(&key(case), count, bearer, direction, &mut buf, bits)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex::encode(&buf),
            hex::encode(&ciphertext),
            "vector {name}: encrypt, trailing bits set"
        );

        let prepared = Nea2::new(&key(case));
        let mut buf = ciphertext.clone();
        prepared
            .apply(count, bearer, direction, &mut buf, bits)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Decryption also zeroes the unused trailing bits, so compare with the
        // plaintext's leading `bits` bits.
        let mut want = plaintext.clone();
        if let Some(last) = want.last_mut() {
            *last &= 0xff << (8 - bits % 8);
        }
        assert_eq!(
            hex::encode(&buf),
            hex::encode(&want),
            "vector {name}: decrypt"
        );
    }
}

#[test]
fn aes_cmac_matches_rfc4493() {
    let all = algo_vectors();
    for case in cases(&all, "aes_cmac_rfc4493", 4) {
        let name = name(case);
        let message = hex(&case["message"]);
        let want: [u8; 16] = hex(&case["mac"]).try_into().expect("CMAC is 16 octets");
        let cmac = AesCmac::new(&key(case));
        assert_eq!(cmac.mac(&message), want, "vector {name}");
        assert_eq!(
            cmac.mac_bits(&message, message.len() * 8),
            Ok(want),
            "vector {name} (bits)"
        );
    }
}

#[test]
fn aes_128_gcm_matches_every_published_vector() {
    let all = gcm_vectors();
    for case in cases(&all, "aes_128_gcm", 2) {
        let name = name(case);
        let iv: [u8; 12] = hex(&case["iv"]).try_into().expect("IV is 12 octets");
        let aad = hex(&case["aad"]);
        let plaintext = hex(&case["plaintext"]);
        let ciphertext = hex(&case["ciphertext"]);
        let tag: [u8; 16] = hex(&case["tag"]).try_into().expect("tag is 16 octets");
        let gcm = Gcm::new(&key(case));

        let mut buf = plaintext.clone();
        let got = gcm
            .seal(&iv, &aad, &mut buf)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex::encode(&buf),
            hex::encode(&ciphertext),
            "vector {name}: ciphertext"
        );
        assert_eq!(hex::encode(got), hex::encode(tag), "vector {name}: tag");

        gcm.open(&iv, &aad, &mut buf, &tag)
            .unwrap_or_else(|e| panic!("{name}: open: {e}"));
        assert_eq!(
            hex::encode(&buf),
            hex::encode(&plaintext),
            "vector {name}: plaintext"
        );
    }
}

#[test]
fn flipping_any_bit_of_gcm_ciphertext_tag_or_aad_fails_open_and_keeps_the_buffer() {
    let gcm = Gcm::new(&AlgKey::from_bytes([0x3c; 16]));
    let n = nonce(1, 42);
    let aad = *b"\x01\x02header";
    let mut sealed = *b"a payload of some length";
    let tag = gcm.seal(&n, &aad, &mut sealed).unwrap();

    for bit in 0..sealed.len() * 8 {
        let mut buf = sealed;
        buf[bit / 8] ^= 0x80 >> (bit % 8);
        let tampered = buf;
        assert_eq!(
            gcm.open(&n, &aad, &mut buf, &tag),
            Err(Error::BadTag),
            "ciphertext bit {bit}"
        );
        assert_eq!(
            buf, tampered,
            "ciphertext bit {bit}: buffer changed on failure"
        );
    }
    for bit in 0..tag.len() * 8 {
        let mut bad = tag;
        bad[bit / 8] ^= 0x80 >> (bit % 8);
        let mut buf = sealed;
        assert_eq!(
            gcm.open(&n, &aad, &mut buf, &bad),
            Err(Error::BadTag),
            "tag bit {bit}"
        );
        assert_eq!(buf, sealed, "tag bit {bit}: buffer changed on failure");
    }
    for bit in 0..aad.len() * 8 {
        let mut bad = aad;
        bad[bit / 8] ^= 0x80 >> (bit % 8);
        let mut buf = sealed;
        assert_eq!(
            gcm.open(&n, &bad, &mut buf, &tag),
            Err(Error::BadTag),
            "aad bit {bit}"
        );
        assert_eq!(buf, sealed, "aad bit {bit}: buffer changed on failure");
    }
    // And the untouched message still opens.
    let mut buf = sealed;
    assert_eq!(gcm.open(&n, &aad, &mut buf, &tag), Ok(()));
    assert_eq!(&buf, b"a payload of some length");
}

#[test]
fn flipping_any_bit_of_a_nia2_protected_message_fails_verify() {
    let nia = Nia2::new(&AlgKey::from_bytes([0xa7; 16]));
    let (count, bearer, direction) = (0x0000_1234, 5, 1);
    for bits in [8 * 24, 8 * 24 - 3] {
        let message = [0x5au8; 24];
        let mac = nia.mac(count, bearer, direction, &message, bits).unwrap();
        assert_eq!(
            nia.verify(count, bearer, direction, &message, bits, &mac),
            Ok(())
        );
        for bit in 0..bits {
            let mut bad = message;
            bad[bit / 8] ^= 0x80 >> (bit % 8);
            assert_eq!(
                nia.verify(count, bearer, direction, &bad, bits, &mac),
                Err(Error::BadTag),
                "message bit {bit} of {bits}"
            );
        }
        for bit in 0..32 {
            let mut bad = mac;
            bad[bit / 8] ^= 0x80 >> (bit % 8);
            assert_eq!(
                nia.verify(count, bearer, direction, &message, bits, &bad),
                Err(Error::BadTag),
                "MAC bit {bit}"
            );
        }
    }
}

#[test]
fn replay_window_edges() {
    let mut w = ReplayWindow::new();
    // Sequence number 0 first.
    assert_eq!(w.accept(0), Ok(()));
    assert_eq!(w.accept(0), Err(Error::Replayed { seq: 0 }));

    w.accept(200).unwrap();
    // Exactly 63 behind: the window's left edge, accepted once.
    assert_eq!(w.check(137), Ok(()));
    assert_eq!(w.accept(137), Ok(()));
    assert_eq!(w.accept(137), Err(Error::Replayed { seq: 137 }));
    // 64 behind: left of the window.
    assert_eq!(
        w.check(136),
        Err(Error::TooOld {
            seq: 136,
            lowest: 137
        })
    );
    assert_eq!(
        w.accept(136),
        Err(Error::TooOld {
            seq: 136,
            lowest: 137
        })
    );
    // Duplicate of the highest.
    assert_eq!(w.accept(200), Err(Error::Replayed { seq: 200 }));
    // Late messages inside the window, each once.
    for seq in 138..200 {
        assert_eq!(w.accept(seq), Ok(()), "late {seq}");
        assert_eq!(
            w.accept(seq),
            Err(Error::Replayed { seq }),
            "duplicate {seq}"
        );
    }
    // A big jump forward leaves only the new highest in the window.
    w.accept(3_000_000_000).unwrap();
    assert_eq!(
        w.check(199),
        Err(Error::TooOld {
            seq: 199,
            lowest: 2_999_999_937
        })
    );
    assert_eq!(w.check(2_999_999_937), Ok(()));
    assert_eq!(w.check(2_999_999_999), Ok(()));
    assert_eq!(
        w.accept(3_000_000_000),
        Err(Error::Replayed { seq: 3_000_000_000 })
    );
    // State survives a snapshot.
    assert_eq!(ReplayWindow::restore(w.highest(), w.bitmap()), Ok(w));
}

#[test]
fn send_counter_is_exhausted_after_u32_max_and_warns_at_the_soft_limit() {
    let mut c = SendCounter::new();
    assert_eq!(c.soft_limit(), DEFAULT_SOFT_LIMIT);
    assert_eq!(c.next(), Ok(0));

    let mut c = SendCounter::restore(Some(DEFAULT_SOFT_LIMIT - 1), DEFAULT_SOFT_LIMIT);
    assert!(!c.rekey_soon());
    assert_eq!(c.next(), Ok(DEFAULT_SOFT_LIMIT - 1));
    assert!(c.rekey_soon(), "the soft limit was reached");

    let mut c = SendCounter::restore(Some(u32::MAX), DEFAULT_SOFT_LIMIT);
    assert_eq!(c.next(), Ok(u32::MAX));
    assert_eq!(c.next(), Err(Error::SequenceExhausted));
    assert_eq!(c.next(), Err(Error::SequenceExhausted), "stays exhausted");
    let snapshot = SendCounter::restore(c.peek(), c.soft_limit());
    assert_eq!(snapshot, c);

    let mut small = SendCounter::with_soft_limit(2);
    small.next().unwrap();
    assert!(!small.rekey_soon());
    small.next().unwrap();
    assert!(small.rekey_soon());
}

#[test]
fn errors_read_as_sentences() {
    let e = Error::TooOld { seq: 3, lowest: 10 };
    assert!(e.to_string().contains("lowest still acceptable: 10"), "{e}");
    let e = Error::DataLongerThanBits { bits: 9, octets: 3 };
    assert!(e.to_string().contains("= 2 octets of data, got 3"), "{e}");
}
