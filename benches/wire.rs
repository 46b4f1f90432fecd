//! Parse and emit of every message. A data message with a 16-octet and a
//! 1 KiB payload must parse in the same time: the view never touches the
//! payload. Run: `cargo bench --bench wire`.

use std::hint::black_box;

use ciot_e2e::kdf::{KdfProfile, Rand, UeNonce};
use ciot_e2e::wire::{
    Cause, DataPacket, DataRepr, Direction, HelloPacket, HelloRepr, KeyExpiredPacket,
    KeyExpiredRepr, Ksi, Message, Suite, TriggerPacket, TriggerRepr,
};
use criterion::{Criterion, criterion_group, criterion_main};

fn trigger() -> TriggerRepr {
    TriggerRepr {
        ksi: Ksi(1),
        confirm: true,
        counter: 42,
        rand: Rand([7; 16]),
        profile: KdfProfile::Ts33220,
        suite: Suite::AES_128_GCM,
        lifetime: 3600,
        tag: [9; 16],
    }
}

fn hello() -> HelloRepr<'static> {
    HelloRepr {
        ksi: Ksi(1),
        rekey: false,
        counter: 42,
        seq: 7,
        nonce: UeNonce::from_bytes([0x4e; 16]),
        id: b"ue-0001",
        tag: [9; 16],
    }
}

fn data_message(payload: usize) -> Vec<u8> {
    let body = vec![0x5a; payload + 16];
    let r = DataRepr {
        ksi: Ksi(1),
        direction: Direction::Uplink,
        suite: Suite::AES_128_GCM,
        seq: 7,
        ciphertext: &body[..payload],
        tag: &body[payload..],
    };
    let mut out = vec![0; r.buffer_len()];
    r.emit_into(&mut out).unwrap();
    out
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    let mut t = [0u8; TriggerRepr::LEN];
    trigger().emit(&mut TriggerPacket::new_unchecked(&mut t[..]));
    g.bench_function("trigger", |b| {
        b.iter(|| Message::parse(black_box(&t[..])).is_ok())
    });
    let mut k = [0u8; KeyExpiredRepr::LEN];
    KeyExpiredRepr {
        ksi: Ksi(1),
        cause: Cause::TE2E_EXPIRED,
        counter: 42,
        refused: Some(7),
        tag: [9; 16],
    }
    .emit(&mut KeyExpiredPacket::new_unchecked(&mut k[..]));
    g.bench_function("key-expired", |b| {
        b.iter(|| Message::parse(black_box(&k[..])).is_ok())
    });
    let mut h = [0u8; HelloRepr::MIN_LEN];
    hello().emit(&mut HelloPacket::new_unchecked(&mut h[..]));
    g.bench_function("hello", |b| {
        b.iter(|| Message::parse(black_box(&h[..])).is_ok())
    });
    for size in [16usize, 1024] {
        let m = data_message(size);
        g.bench_function(format!("data/{size}"), |b| {
            b.iter(|| Message::parse(black_box(&m[..])).is_ok())
        });
    }
    g.finish();
}

fn emit(c: &mut Criterion) {
    let mut g = c.benchmark_group("emit");
    let tr = trigger();
    let mut t = [0u8; TriggerRepr::LEN];
    g.bench_function("trigger", |b| {
        b.iter(|| black_box(&tr).emit(&mut TriggerPacket::new_unchecked(black_box(&mut t[..]))))
    });
    let kr = KeyExpiredRepr {
        ksi: Ksi(1),
        cause: Cause::TE2E_EXPIRED,
        counter: 42,
        refused: Some(7),
        tag: [9; 16],
    };
    let mut k = [0u8; KeyExpiredRepr::LEN];
    g.bench_function("key-expired", |b| {
        b.iter(|| black_box(&kr).emit(&mut KeyExpiredPacket::new_unchecked(black_box(&mut k[..]))))
    });
    let hr = hello();
    let mut h = [0u8; HelloRepr::MIN_LEN];
    g.bench_function("hello", |b| {
        b.iter(|| black_box(&hr).emit(&mut HelloPacket::new_unchecked(black_box(&mut h[..]))))
    });
    let mut out = vec![0u8; 2048];
    for size in [16usize, 1024] {
        let m = data_message(size);
        let Ok(Message::Data(r)) = Message::parse(&m) else {
            unreachable!()
        };
        g.bench_function(format!("data-header/{size}"), |b| {
            // The in-place path protect uses: header only, payload already in place.
            b.iter(|| {
                DataPacket::new_unchecked(black_box(&mut out[..r.buffer_len()])).set_header(
                    r.ksi,
                    r.direction,
                    r.suite,
                    r.seq,
                )
            })
        });
        g.bench_function(format!("data-copy/{size}"), |b| {
            b.iter(|| black_box(&r).emit_into(black_box(&mut out[..])).is_ok())
        });
    }
    g.finish();
}

criterion_group!(benches, parse, emit);
criterion_main!(benches);
