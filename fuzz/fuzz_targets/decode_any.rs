#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ciot_e2e_testkit::fuzzing::decode_any(data));
