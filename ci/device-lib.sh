# Sourced by ci/c-api.sh and ci/footprint.sh: builds the C API's static
# library for a bare-metal target the way a device links it, so both scripts
# share one build per target.
#
#   device_lib <rust-target> [features]   # prints the path of libciot_e2e_c.a
#
# The reference configuration: UE only, AES-128-GCM, the TS 33.220 KDF
# (no other suite or profile), no kept ciphers, the compact software
# backends of aes and sha2, 32-bit words for aes and polyval (cpubits),
# opt-level "s", LTO, panic=abort (the `firmware` profile), and the
# panic handler that refers to an undefined symbol (panic-link-check).
# -Z emit-stack-sizes adds LLVM's `.stack_sizes` section, which
# ci/stack-depth reads; RUSTC_BOOTSTRAP=1 lets the stable compiler take that
# one flag, and changes nothing else about the build.

DEVICE_FEATURES_DEFAULT="suite-aes-gcm,panic-link-check"
DEVICE_RUSTFLAGS='--cfg aes_backend_soft="compact" --cfg sha2_backend_soft="compact" --cfg cpubits="32" -C jump-tables=no -Z emit-stack-sizes'

device_lib() {
    local target="$1" features="${2:-$DEVICE_FEATURES_DEFAULT}"
    local repo
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    local dir="${CARGO_TARGET_DIR:-$repo/target}/device"
    if ! rustup target list --installed | grep -qx "$target"; then
        rustup target add "$target" >&2
    fi
    RUSTC_BOOTSTRAP=1 RUSTFLAGS="$DEVICE_RUSTFLAGS" \
        cargo rustc --quiet --manifest-path "$repo/Cargo.toml" -p ciot-e2e-capi --lib \
        --crate-type staticlib --profile firmware --target "$target" --target-dir "$dir" \
        --no-default-features --features "$features" >&2
    # Copied out per feature set: cargo writes every set to the same path.
    local copy="$dir/$target/firmware/libciot_e2e_c-${features//,/+}.a"
    cp "$dir/$target/firmware/libciot_e2e_c.a" "$copy"
    echo "$copy"
}
