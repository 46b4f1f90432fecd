//! Published vectors and edge cases of 128-NEA2, the bit-level CMAC and
//! 128-NIA2.

use super::cmac::{dbl, xor_into};
use super::*;
use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use zeroize::ZeroizeOnDrop;

fn key(hex: &[u8; 16]) -> AlgKey {
    AlgKey::from_bytes(*hex)
}

// TS 33.401 C.2 test set 1 (LENGTH = 58).
const NIA2_SET1_KEY: [u8; 16] = [
    0x2b, 0xd6, 0x45, 0x9f, 0x82, 0xc5, 0xb3, 0x00, 0x95, 0x2c, 0x49, 0x10, 0x48, 0x81, 0xff, 0x48,
];
const NIA2_SET1_MSG: [u8; 8] = [0x33, 0x32, 0x34, 0x62, 0x63, 0x39, 0x38, 0x40];

// RFC 4493 4: the key of all four examples.
const RFC4493_KEY: [u8; 16] = [
    0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c,
];

#[test]
fn subkeys_match_rfc4493_section_4() {
    let c = AesCmac::new(&key(&RFC4493_KEY));
    assert_eq!(
        c.k1,
        [
            0xfb, 0xee, 0xd6, 0x18, 0x35, 0x71, 0x33, 0x66, 0x7c, 0x85, 0xe0, 0x8f, 0x72, 0x36,
            0xa8, 0xde
        ]
    );
    assert_eq!(
        c.k2,
        [
            0xf7, 0xdd, 0xac, 0x30, 0x6a, 0xe2, 0x66, 0xcc, 0xf9, 0x0b, 0xc1, 0x1e, 0xe4, 0x6d,
            0x51, 0x3b
        ]
    );
}

#[test]
fn dbl_reduces_when_top_bit_is_set() {
    let mut top = [0u8; 16];
    top[0] = 0x80;
    let mut want = [0u8; 16];
    want[15] = 0x87;
    assert_eq!(dbl(top), want);
    let mut one = [0u8; 16];
    one[15] = 1;
    let mut two = [0u8; 16];
    two[15] = 2;
    assert_eq!(dbl(one), two);
}

#[test]
fn empty_message_cmac_matches_rfc4493_example_1() {
    let c = AesCmac::new(&key(&RFC4493_KEY));
    assert_eq!(
        c.mac(&[]),
        [
            0xbb, 0x1d, 0x69, 0x29, 0xe9, 0x59, 0x37, 0x28, 0x7f, 0xa3, 0x7d, 0x12, 0x9b, 0x75,
            0x67, 0x46
        ]
    );
    assert_eq!(c.mac_bits(&[], 0), Ok(c.mac(&[])));
}

#[test]
fn octet_cmac_agrees_with_the_cmac_crate_for_lengths_0_to_100() {
    use ::cmac::{Cmac, Mac};
    let k = key(&RFC4493_KEY);
    let ours = AesCmac::new(&k);
    let mut msg = [0u8; 100];
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    for len in 0..=msg.len() {
        let mut theirs = <Cmac<Aes128> as ::cmac::KeyInit>::new(k.as_bytes().into());
        theirs.update(&msg[..len]);
        let want: [u8; 16] = theirs.finalize().into_bytes().into();
        assert_eq!(ours.mac(&msg[..len]), want, "length {len}");
        assert_eq!(
            ours.mac_bits(&msg[..len], len * 8),
            Ok(want),
            "length {len} as bits"
        );
    }
}

#[test]
fn bit_cmac_ignores_unused_trailing_bits() {
    let c = AesCmac::new(&key(&RFC4493_KEY));
    // 13 bits: only the top 5 bits of the second octet count.
    let a = c.mac_bits(&[0xa5, 0b1011_0000], 13);
    let b = c.mac_bits(&[0xa5, 0b1011_0111], 13);
    assert_eq!(a, b);
    let flipped = c.mac_bits(&[0xa5, 0b1010_0000], 13);
    assert_ne!(a, flipped);
}

#[test]
fn bit_cmac_pads_right_after_the_last_bit() {
    // A 7-bit message equals the octet-aligned message whose last octet
    // already carries the padding bit, minus the aligned padding: check
    // it against the definition on one block, E((M || 1 0*) ^ K2).
    let c = AesCmac::new(&key(&RFC4493_KEY));
    let mut block = aes::Block::default();
    block[0] = 0b1010_1011; // 1010101 then the padding 1
    xor_into(&mut block, &c.k2);
    c.aes.encrypt_block(&mut block);
    let want: [u8; 16] = block.into();
    assert_eq!(c.mac_bits(&[0b1010_1010], 7), Ok(want));
}

#[test]
fn bit_cmac_with_a_full_128_bit_block_uses_k1() {
    // 128 bits of message: complete block, no padding.
    let c = AesCmac::new(&key(&RFC4493_KEY));
    let msg = [0x5au8; 16];
    let mut block = aes::Block::from(msg);
    xor_into(&mut block, &c.k1);
    c.aes.encrypt_block(&mut block);
    let want: [u8; 16] = block.into();
    assert_eq!(c.mac_bits(&msg, 128), Ok(want));
}

#[test]
fn nia2_set1_with_58_bits_matches_published_mac() {
    let mac = nia2(&key(&NIA2_SET1_KEY), 0x38a6_f056, 24, 0, &NIA2_SET1_MSG, 58);
    assert_eq!(mac, Ok([0x11, 0x8c, 0x6e, 0xb8]));
}

#[test]
fn nia2_verify_accepts_the_right_mac_and_rejects_others() {
    let n = Nia2::new(&key(&NIA2_SET1_KEY));
    let good = [0x11, 0x8c, 0x6e, 0xb8];
    assert_eq!(
        n.verify(0x38a6_f056, 24, 0, &NIA2_SET1_MSG, 58, &good),
        Ok(())
    );
    for bit in 0..32 {
        let mut bad = good;
        bad[bit / 8] ^= 0x80 >> (bit % 8);
        assert_eq!(
            n.verify(0x38a6_f056, 24, 0, &NIA2_SET1_MSG, 58, &bad),
            Err(Error::BadTag),
            "bit {bit}"
        );
    }
    // Every input bit is covered: COUNT, BEARER and DIRECTION too.
    assert_eq!(
        n.verify(0x38a6_f057, 24, 0, &NIA2_SET1_MSG, 58, &good),
        Err(Error::BadTag)
    );
    assert_eq!(
        n.verify(0x38a6_f056, 25, 0, &NIA2_SET1_MSG, 58, &good),
        Err(Error::BadTag)
    );
    assert_eq!(
        n.verify(0x38a6_f056, 24, 1, &NIA2_SET1_MSG, 58, &good),
        Err(Error::BadTag)
    );
}

#[test]
fn nia2_rejects_bad_bearer_direction_and_lengths() {
    let n = Nia2::new(&key(&NIA2_SET1_KEY));
    assert_eq!(n.mac(0, 32, 0, &[0], 8), Err(Error::BadBearer(32)));
    assert_eq!(n.mac(0, 0, 2, &[0], 8), Err(Error::BadDirection(2)));
    assert_eq!(
        n.mac(0, 0, 0, &[0], 9),
        Err(Error::BitsTooLong {
            bits: 9,
            available: 8
        })
    );
    assert_eq!(
        n.mac(0, 0, 0, &[0, 0], 8),
        Err(Error::DataLongerThanBits { bits: 8, octets: 2 })
    );
    assert!(n.mac(0, 31, 1, &[], 0).is_ok());
}

#[test]
fn nea2_zeroes_unused_trailing_bits_and_round_trips() {
    let k = key(&NIA2_SET1_KEY);
    let plain = [0xffu8; 5];
    let mut buf = plain;
    nea2(&k, 7, 3, 1, &mut buf, 35).unwrap();
    assert_eq!(buf[4] & 0x1f, 0, "trailing 5 bits must be zero");
    nea2(&k, 7, 3, 1, &mut buf, 35).unwrap();
    assert_eq!(buf, [0xff, 0xff, 0xff, 0xff, 0xe0]);
}

#[test]
fn nea2_keystream_starts_at_count_bearer_direction_block() {
    // The first keystream block is AES_K(T1) with T1 built per B.1.3.
    let k = key(&NIA2_SET1_KEY);
    let mut data = [0u8; 16];
    nea2(&k, 0x0102_0304, 0b10101, 1, &mut data, 128).unwrap();
    let aes = Aes128::new(k.as_bytes().into());
    let mut t1 = aes::Block::from([1, 2, 3, 4, 0b1010_1100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    aes.encrypt_block(&mut t1);
    let want: [u8; 16] = t1.into();
    assert_eq!(data, want);
}

#[test]
fn nea2_counter_increments_the_low_64_bits() {
    // Second keystream block is AES_K(T1 + 1).
    let k = key(&NIA2_SET1_KEY);
    let mut data = [0u8; 32];
    Nea2::new(&k)
        .apply(0xffff_ffff, 31, 1, &mut data, 256)
        .unwrap();
    let aes = Aes128::new(k.as_bytes().into());
    let mut t2 = aes::Block::from([
        0xff, 0xff, 0xff, 0xff, 0xfc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ]);
    aes.encrypt_block(&mut t2);
    let want: [u8; 16] = t2.into();
    assert_eq!(data[16..], want);
}

#[test]
fn nea2_rejects_bad_inputs_and_leaves_data_unchanged() {
    let n = Nea2::new(&key(&NIA2_SET1_KEY));
    let mut data = [0xa5u8; 3];
    assert_eq!(n.apply(0, 32, 0, &mut data, 24), Err(Error::BadBearer(32)));
    assert_eq!(n.apply(0, 0, 2, &mut data, 24), Err(Error::BadDirection(2)));
    assert_eq!(
        n.apply(0, 0, 0, &mut data, 25),
        Err(Error::BitsTooLong {
            bits: 25,
            available: 24
        })
    );
    assert_eq!(
        n.apply(0, 0, 0, &mut data, 16),
        Err(Error::DataLongerThanBits {
            bits: 16,
            octets: 3
        })
    );
    assert_eq!(data, [0xa5; 3]);
}

#[test]
fn nea2_of_nothing_is_nothing() {
    let mut data: [u8; 0] = [];
    assert_eq!(
        Nea2::new(&key(&NIA2_SET1_KEY)).apply(0, 0, 0, &mut data, 0),
        Ok(())
    );
}

#[test]
fn debug_does_not_print_key_material() {
    extern crate std;
    use std::format;
    let k = key(&NIA2_SET1_KEY);
    assert_eq!(format!("{:?}", Nea2::new(&k)), "Nea2(<redacted>)");
    assert_eq!(format!("{:?}", Nia2::new(&k)), "Nia2(<redacted>)");
    assert_eq!(format!("{:?}", AesCmac::new(&k)), "AesCmac(<redacted>)");
}

#[test]
fn keyed_types_zeroize_on_drop() {
    fn assert_zod<T: ZeroizeOnDrop>() {}
    assert_zod::<Aes128>();
    assert_zod::<Nea2>();
    assert_zod::<Nia2>();
    assert_zod::<AesCmac>();
}
