#!/usr/bin/env bash
# The C API from C, against the Rust EESE (`ciot-e2e eese` on loopback):
#
# 1. the committed header is the one cbindgen writes (crates/capi/tests/header.rs),
#    and the C API's Rust tests pass in the device configuration too;
# 2. host: the complete example of docs/c-api.md, compiled from the document
#    and run against the EESE (hello, one payload, its echo); then a C UE
#    (crates/capi/examples/host_ue.c + cycle.c), built with gcc
#    against the static library and again against the shared one, runs the
#    TR 33.863 cycle over UDP: hello, trigger, data; te2e expiry; key-expired
#    error, new trigger, retransmitted message; a restart (init again, a new
#    nonce from getrandom(2)); it exits 0 only if every payload was echoed;
# 3. device: the same cycle in a Cortex-M4 firmware (crates/capi/firmware),
#    built with arm-none-eabi-gcc against the static library for
#    thumbv7em-none-eabi (soft-float ABI) and again for thumbv7em-none-eabihf,
#    run in qemu-system-arm (mps2-an386, semihosting for output, the exit
#    status and, since the emulated board has no TRNG, the host's
#    /dev/urandom for the nonce); its datagrams go over the board's UART to
#    ci/qemu-bridge, which relays them to the same EESE over UDP.
#
# Needs gcc, arm-none-eabi-gcc and qemu-system-arm (.ci/run installs them).
# Run from anywhere: `bash ci/c-api.sh`. Stops at the first failure.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=ci/device-lib.sh
source ci/device-lib.sh

out="${CARGO_TARGET_DIR:-$repo/target}/c-api"
mkdir -p "$out"
capi=crates/capi
# The AKA keys every UE here derives its root from (docs/c-api.md), and te2e.
ck=0123456789abcdeffedcba9876543210
ik=00112233445566778899aabbccddeeff
te2e=2

step() {
    printf '\n-- c-api: %s\n' "$*"
}

eese_pid=
stop_eese() {
    if [[ -n "$eese_pid" ]]; then
        kill "$eese_pid" 2>/dev/null || true
        wait "$eese_pid" 2>/dev/null || true
        eese_pid=
    fi
}
trap stop_eese EXIT

# Starts `ciot-e2e eese` on a free loopback port; sets eese_addr.
start_eese() {
    local log="$out/eese-$1.log"
    "$repo/target/release/ciot-e2e" eese --listen 127.0.0.1:0 --ck "$ck" --ik "$ik" \
        --te2e "$te2e" --exit-after 120 >"$log" 2>&1 &
    eese_pid=$!
    eese_addr=
    for _ in $(seq 100); do
        eese_addr="$(sed -n 's/^eese: listening on \([0-9.:]*\),.*/\1/p' "$log")"
        [[ -n "$eese_addr" ]] && return 0
        sleep 0.05
    done
    echo "c-api: the EESE did not start:" >&2
    cat "$log" >&2
    return 1
}

step "header: crates/capi/include/ciot_e2e.h is what cbindgen writes"
cargo test --quiet -p ciot-e2e-capi --test header

step "the C API's Rust tests in the device configuration (one suite, no kept ciphers)"
cargo test --quiet -p ciot-e2e-capi --no-default-features --features suite-aes-gcm

step "host: the EESE and the C API's libraries (static and shared)"
cargo build --quiet --release -p ciot-e2e-cli -p ciot-e2e-capi
cflags=(-std=c11 -Wall -Wextra -Werror -pedantic -O2 -I "$capi/include")
# The default build keeps expanded ciphers in the UE state: the header's
# CIOT_E2E_KEPT_CIPHERS says so to the C side.
host_src=("$capi/examples/host_ue.c" "$capi/examples/cycle.c")
gcc "${cflags[@]}" -DCIOT_E2E_KEPT_CIPHERS -o "$out/host_ue" "${host_src[@]}" \
    target/release/libciot_e2e_c.a -lpthread -ldl -lm
gcc "${cflags[@]}" -DCIOT_E2E_KEPT_CIPHERS -o "$out/host_ue_shared" "${host_src[@]}" \
    -L target/release -lciot_e2e_c

# The complete example of docs/c-api.md, as the document has it.
awk '/^<!-- example:/ { f = 1; next } f && /^```c$/ { c = 1; next } c && /^```$/ { exit } c { print }' \
    docs/c-api.md >"$out/example.c"
gcc "${cflags[@]}" -DCIOT_E2E_KEPT_CIPHERS -o "$out/example" "$out/example.c" \
    target/release/libciot_e2e_c.a -lpthread -ldl -lm

step "host: the example of docs/c-api.md says hello, sends a payload and gets its echo"
start_eese example
timeout 60 "$out/example" "${eese_addr%:*}" "${eese_addr##*:}"
stop_eese

for variant in host_ue host_ue_shared; do
    step "host: $variant runs the cycle against ciot-e2e eese over UDP"
    start_eese "$variant"
    LD_LIBRARY_PATH="$repo/target/release" timeout 120 \
        "$out/$variant" "${eese_addr%:*}" "${eese_addr##*:}" "$ck" "$ik" "$te2e"
    stop_eese
done

step "device: the firmware's tools"
tools="arm-none-eabi-gcc qemu-system-arm"
for tool in $tools; do
    command -v "$tool" >/dev/null || { echo "c-api: $tool is missing (.ci/run installs it)" >&2; exit 1; }
done
cargo build --quiet --release --locked --manifest-path ci/qemu-bridge/Cargo.toml \
    --target-dir "${CARGO_TARGET_DIR:-$repo/target}/qemu-bridge"
bridge="${CARGO_TARGET_DIR:-$repo/target}/qemu-bridge/release/qemu-bridge"

fw="$capi/firmware"
fw_src=("$fw/startup.c" "$fw/mem.c" "$fw/main.c" "$capi/examples/cycle.c")
fw_cflags=(-std=c11 -Wall -Wextra -Werror -Os -ffreestanding -ffunction-sections
    -fdata-sections -I "$capi/include" -I "$fw")
fw_ldflags=(-nostdlib -Wl,--gc-sections -Wl,-z,noexecstack -T "$fw/mps2-an386.ld")
for target in thumbv7em-none-eabi thumbv7em-none-eabihf; do
    case "$target" in
    thumbv7em-none-eabi) abi=(-mcpu=cortex-m4 -mthumb -mfloat-abi=soft) ;;
    thumbv7em-none-eabihf) abi=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16) ;;
    esac
    step "device: firmware for $target (arm-none-eabi-gcc, static library)"
    lib="$(device_lib "$target")"
    arm-none-eabi-gcc "${abi[@]}" "${fw_cflags[@]}" "${fw_ldflags[@]}" -o "$out/firmware-$target.elf" \
        "${fw_src[@]}" "$lib" -lgcc
    arm-none-eabi-size "$out/firmware-$target.elf"

    step "device: $target in qemu-system-arm (mps2-an386) runs the cycle against ciot-e2e eese"
    start_eese "firmware-$target"
    "$bridge" "$eese_addr" 90 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 \
        -display none -monitor none -semihosting-config enable=on,target=native \
        -kernel "$out/firmware-$target.elf"
    stop_eese
done

step "ok: the host UE (static and shared library) and the Cortex-M4 firmware (eabi, eabihf) completed the cycle"
