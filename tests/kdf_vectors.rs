//! Published vectors for the TS 33.220 KDF and HKDF-SHA-256 (RFC 5869), run
//! through the library. A failure names the vector.

use ciot_e2e::kdf::{Fc, Ts33220Key, kdf};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("data/kdf.json")).expect("tests/data/kdf.json parses")
}

fn hex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

#[test]
fn ts33220_kdf_matches_every_published_vector() {
    let all = vectors();
    let cases = all["ts33220_kdf"].as_array().expect("array");
    assert!(cases.len() >= 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let key = hex(&case["key"]);
        let fc = Fc::from_octets(&hex(&case["fc"])).unwrap();
        let params: Vec<Vec<u8>> = case["params"].as_array().unwrap().iter().map(hex).collect();
        let refs: Vec<&[u8]> = params.iter().map(Vec::as_slice).collect();
        let want = hex(&case["output"]);
        let got = kdf(&key, fc, &refs).unwrap();
        assert_eq!(
            got.as_slice(),
            want.as_slice(),
            "vector {name}: key {}",
            hex::encode(&key)
        );
        // The prepared (reused) key must give the same output twice.
        let prepared = Ts33220Key::new(&key);
        assert_eq!(
            prepared.derive(fc, &refs).unwrap().as_slice(),
            want.as_slice(),
            "{name}"
        );
        assert_eq!(
            prepared.derive(fc, &refs).unwrap().as_slice(),
            want.as_slice(),
            "{name}"
        );
    }
}

#[test]
fn s_string_of_every_vector_is_what_we_hash() {
    // HMAC-SHA-256(key, s) must equal the output: checks the vector's S column
    // against the KDF's own S encoding through a second, independent path.
    use hmac::{Hmac, KeyInit, Mac};
    let all = vectors();
    for case in all["ts33220_kdf"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&hex(&case["key"])).unwrap();
        mac.update(&hex(&case["s"]));
        let fc = Fc::from_octets(&hex(&case["fc"])).unwrap();
        let params: Vec<Vec<u8>> = case["params"].as_array().unwrap().iter().map(hex).collect();
        let refs: Vec<&[u8]> = params.iter().map(Vec::as_slice).collect();
        let ours = kdf(&hex(&case["key"]), fc, &refs).unwrap();
        assert_eq!(
            mac.finalize().into_bytes().as_slice(),
            ours.as_slice(),
            "{name}"
        );
    }
}

#[test]
fn hkdf_profile_matches_rfc5869() {
    // The HKDF profile is HKDF-SHA-256; check the library's HKDF against the
    // RFC's cases, PRK and OKM, including the empty salt of case 3.
    use hkdf::Hkdf;
    let all = vectors();
    let cases = all["hkdf_sha256_rfc5869"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let salt = hex(&case["salt"]);
        let (prk, hk) = Hkdf::<sha2::Sha256>::extract(
            if salt.is_empty() { None } else { Some(&salt) },
            &hex(&case["ikm"]),
        );
        assert_eq!(prk.as_slice(), hex(&case["prk"]).as_slice(), "{name} PRK");
        let mut okm = vec![0u8; case["length"].as_u64().unwrap() as usize];
        hk.expand(&hex(&case["info"]), &mut okm).unwrap();
        assert_eq!(okm, hex(&case["okm"]), "{name} OKM");
    }
}

#[test]
fn hkdf_profile_key_is_rfc5869_without_salt() {
    // RFC 5869 case 3 has no salt and no info: the crate's HkdfKey must give
    // the first 32 octets of its OKM.
    use ciot_e2e::kdf::HkdfKey;
    let all = vectors();
    let case = &all["hkdf_sha256_rfc5869"][1];
    assert_eq!(case["name"], "rfc5869-case3");
    let okm = hex(&case["okm"]);
    let ours = HkdfKey::new(&hex(&case["ikm"])).expand(&hex(&case["info"]));
    assert_eq!(ours.as_slice(), &okm[..32]);
}
