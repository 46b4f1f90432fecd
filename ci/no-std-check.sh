#!/usr/bin/env bash
# No-allocator check: links the key derivation core into a `#![no_std]`
# binary (ci/no-std-check) that has no global allocator. If any derivation
# needed the heap, rustc refuses to build it ("no global memory allocator
# found but one is required").
#
# Built for thumbv7em-none-eabihf (Cortex-M4F, no std at all); the target is
# added with rustup when missing. Where it cannot be added (offline), the same
# crate is linked for the host without start files, which fails the same way.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
manifest="$here/no-std-check/Cargo.toml"
target_dir="${CARGO_TARGET_DIR:-$repo/target}/no-std-check"
triple=thumbv7em-none-eabihf

if rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"; then
    echo "no-std check: linking for $triple without an allocator"
    cargo build --release --locked --manifest-path "$manifest" --target-dir "$target_dir" --target "$triple"
else
    host="$(rustc -vV | sed -n 's/^host: //p')"
    echo "no-std check: $triple unavailable; linking for $host without std or an allocator"
    RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-nostartfiles -C link-arg=-lc" \
        cargo build --release --locked --manifest-path "$manifest" --target-dir "$target_dir" --target "$host"
fi
echo "no-std check: ok (kdf, wire, protect and the endpoint core link with no global allocator)"
