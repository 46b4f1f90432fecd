#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target of fuzz/ for a bounded time; exits non-zero
# when a target crashes (or does not build).
#
#   ci/fuzz.sh                     every target, FUZZ_SECS (default 45) each
#   FUZZ_SECS=10 ci/fuzz.sh kdf    one target
#
# Uses the nightly toolchain with AddressSanitizer when rustup has nightly,
# otherwise stable with `-s none` (libFuzzer coverage only, no ASan). One
# fuzzing process at a time, one build job unless CARGO_BUILD_JOBS says
# otherwise. A crash input is left in fuzz/artifacts/<target>/ (replayed by
# `cargo test --test fuzz_corpus` until it is fixed and moved to
# fuzz/regressions/).
#
# Budget on a 2-core machine: installing cargo-fuzz ~1 min, building the
# targets ~2.5 min, 5 × 45 s of fuzzing ~4 min: under 10 minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${FUZZ_SECS:-45}
ALL=(decode_any repr_roundtrip unprotect kdf endpoint)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    TOOLCHAIN=(+nightly)
    SANITIZER=()
    echo "fuzz: nightly toolchain, AddressSanitizer"
else
    TOOLCHAIN=()
    SANITIZER=(-s none)
    echo "fuzz: stable toolchain, no sanitizer (-s none)"
fi

cd "$ROOT/fuzz"
cargo "${TOOLCHAIN[@]}" fuzz build "${SANITIZER[@]}"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failed=()
for t in "${TARGETS[@]}"; do
    echo "fuzz: $t for ${SECS}s"
    mkdir -p "$WORK/$t" "artifacts/$t"
    # New inputs go to a scratch corpus; the committed one is only read.
    if ! cargo "${TOOLCHAIN[@]}" fuzz run "${SANITIZER[@]}" "$t" "$WORK/$t" "corpus/$t" -- \
        -max_total_time="$SECS" -print_final_stats=1 \
        -artifact_prefix="$ROOT/fuzz/artifacts/$t/" 2>"$WORK/$t.log"; then
        tail -n 60 "$WORK/$t.log"
        failed+=("$t")
    else
        grep -E '^stat::(number_of_executed_units|average_exec_per_sec)|^Done' "$WORK/$t.log" || true
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#TARGETS[@]} target(s) ran ${SECS}s each without a crash"
