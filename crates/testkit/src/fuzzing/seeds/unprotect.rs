//! Scripts for the unprotect target.

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use ciot_e2e::wire::{Direction, MAX_MESSAGE_LEN, Suite, data};

use super::super::reader::Writer;
use super::super::unprotect::{Mutation, Op as U};
use super::messages::data_msg;

fn script<'a>(ops: impl IntoIterator<Item = U<'a>>) -> Vec<u8> {
    let mut w = Writer::default();
    for op in ops {
        op.write(&mut w);
    }
    w.0
}

pub(super) fn unprotect_scripts() -> Vec<(String, Vec<u8>)> {
    let flip = Mutation {
        kind: 0,
        pos: 77,
        val: 0,
    };
    let mut out = Vec::new();
    for c in 0u8..6 {
        out.push((
            format!("seal-open-{c}"),
            script([
                U::Seal {
                    c,
                    ksi: 1,
                    downlink: false,
                    seq: 0,
                    payload: b"hello",
                },
                U::OpenSealed { c, idx: 0 },
                U::OpenSealed { c, idx: 0 },
                U::OpenSealed { c: c ^ 1, idx: 0 },
                U::OpenSealed { c: c ^ 2, idx: 0 },
                U::Seal {
                    c,
                    ksi: 33,
                    downlink: true,
                    seq: 100,
                    payload: b"",
                },
                U::OpenSealed { c, idx: 1 },
                U::OpenMutated {
                    c,
                    idx: 1,
                    mutation: flip,
                },
            ]),
        ));
        out.push((
            format!("window-{c}"),
            script([
                U::Seal {
                    c,
                    ksi: 2,
                    downlink: true,
                    seq: 10,
                    payload: b"a",
                },
                U::Seal {
                    c,
                    ksi: 2,
                    downlink: true,
                    seq: 80,
                    payload: b"b",
                },
                U::Seal {
                    c,
                    ksi: 2,
                    downlink: true,
                    seq: 17,
                    payload: b"c",
                },
                U::Seal {
                    c,
                    ksi: 2,
                    downlink: true,
                    seq: u32::MAX,
                    payload: b"d",
                },
                U::OpenSealed { c, idx: 0 },
                U::OpenSealed { c, idx: 1 },
                U::OpenSealed { c, idx: 0 },
                U::OpenSealed { c, idx: 2 },
                U::OpenSealed { c, idx: 3 },
                U::OpenSealed { c, idx: 2 },
            ]),
        ));
    }
    for kind in 0u8..5 {
        out.push((
            format!("mutate-{kind}"),
            script([
                U::Seal {
                    c: 1,
                    ksi: 9,
                    downlink: false,
                    seq: 7,
                    payload: b"payload under test",
                },
                U::OpenMutated {
                    c: 1,
                    idx: 0,
                    mutation: Mutation {
                        kind,
                        pos: 3,
                        val: 0xff,
                    },
                },
                U::OpenMutated {
                    c: 1,
                    idx: 0,
                    mutation: Mutation {
                        kind,
                        pos: 20,
                        val: 0x01,
                    },
                },
                U::OpenSealed { c: 1, idx: 0 },
            ]),
        ));
    }
    // One keyset under trigger counters 1 and 2 (ciphers 0/4 and 1/5): what
    // one seals, the other must not open.
    for c in 0u8..2 {
        out.push((
            format!("counter-bound-{c}"),
            script([
                U::Seal {
                    c,
                    ksi: 1,
                    downlink: false,
                    seq: 0,
                    payload: b"Hello",
                },
                U::Seal {
                    c: c + 4,
                    ksi: 1,
                    downlink: false,
                    seq: 0,
                    payload: b"Hello",
                },
                U::OpenSealed { c: c + 4, idx: 0 },
                U::OpenSealed { c, idx: 1 },
                U::OpenSealed { c, idx: 0 },
                U::OpenSealed { c: c + 4, idx: 1 },
            ]),
        ));
    }
    // The largest payload NEA2/NIA2 takes, and one octet more.
    let max = vec![0x5a; MAX_MESSAGE_LEN - data::HEADER_LEN - Suite::NEA2_NIA2.tag_len()];
    out.push((
        "payload-limit".to_string(),
        script([
            U::Seal {
                c: 0,
                ksi: 0,
                downlink: false,
                seq: 1,
                payload: &max,
            },
            U::Seal {
                c: 0,
                ksi: 0,
                downlink: false,
                seq: 2,
                payload: &[&max[..], &[0]].concat(),
            },
            U::OpenSealed { c: 0, idx: 0 },
        ]),
    ));
    let raw = data_msg(Suite::NEA2_NIA2, Direction::Uplink, 5, b"hello");
    out.push((
        "raw".to_string(),
        script([
            U::OpenRaw { c: 0, bytes: &raw },
            U::OpenRaw {
                c: 0,
                bytes: &raw[..9],
            },
        ]),
    ));
    out.push((
        "restore".to_string(),
        script([
            U::Restore {
                highest: None,
                bitmap: 0,
            },
            U::Restore {
                highest: None,
                bitmap: 1,
            },
            U::Restore {
                highest: Some(0),
                bitmap: 1,
            },
            U::Restore {
                highest: Some(0),
                bitmap: 3,
            },
            U::Restore {
                highest: Some(62),
                bitmap: u64::MAX >> 1,
            },
            U::Restore {
                highest: Some(62),
                bitmap: u64::MAX,
            },
            U::Restore {
                highest: Some(63),
                bitmap: u64::MAX,
            },
            U::Restore {
                highest: Some(u32::MAX),
                bitmap: 0x8000_0000_0000_0001,
            },
        ]),
    ));
    out
}
