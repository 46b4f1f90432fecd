#!/usr/bin/env bash
# The UE's footprint on a device, against its budget.
#
# Builds the C API's static library in the reference configuration
# (ci/device-lib.sh: UE only, AES-128-GCM, TS 33.220 KDF, compact software
# backends, opt-level "s", LTO, panic=abort) and links:
#
# - the reference firmware (crates/capi/firmware/footprint.c: every C entry
#   point called once, the UE state and buffers static, with startup.c and
#   mem.c, the routines its C library would bring) for thumbv7em-none-eabi
#   with arm-none-eabi-gcc: the figures the budget applies to;
# - the library alone (every exported ciot_e2e_* function kept, nothing
#   else; compiler-builtins' mem* routines) with rust-lld, for
#   thumbv7em-none-eabi, thumbv7em-none-eabihf, thumbv6m-none-eabi and
#   riscv32imc-unknown-none-elf, for comparison.
#
# Every link is also the no-panic proof: the library's panic handler refers
# to a symbol nothing defines (feature panic-link-check), so an image that
# keeps any path to a panic does not link. A self-test shows that such a
# link does fail.
#
# Worst-case stack: ci/stack-depth, from LLVM's per-function stack sizes and
# the call graph of the disassembly; it fails if the graph has an indirect
# call or jump, or recursion. The one indirect call allowed is the caller's
# random source, called by ciot_e2e_c::ue::draw_nonce from ciot_e2e_ue_init;
# its own frame is the caller's (like the caller's own frame, not counted),
# and the depth it is called at is printed (`callback:`).
#
# Prints a table, the largest symbols of the reference firmware, and last one
# line: `footprint: text=<B> data=<B> bss=<B> state=<B> stack=<B>`. Exits
# non-zero when a figure is over its budget: text 16,384, data + bss 1,024,
# state 512 (with a 128-octet hold buffer), stack 1,536 octets; each can be
# set with FOOTPRINT_MAX_{TEXT,DATA_BSS,STATE,STACK}. Exits non-zero too when
# the state the library uses outgrows what the header tells a device build
# to allocate (CIOT_E2E_UE_SIZE without CIOT_E2E_KEPT_CIPHERS), on any target:
# init would refuse that storage.
#
# Needs arm-none-eabi-gcc and rustup (for the targets and llvm-tools).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=ci/device-lib.sh
source ci/device-lib.sh

max_text="${FOOTPRINT_MAX_TEXT:-16384}"
max_data_bss="${FOOTPRINT_MAX_DATA_BSS:-1024}"
max_state="${FOOTPRINT_MAX_STATE:-512}"
max_stack="${FOOTPRINT_MAX_STACK:-1536}"

out="${CARGO_TARGET_DIR:-$repo/target}/footprint"
mkdir -p "$out"

command -v arm-none-eabi-gcc >/dev/null || {
    echo "footprint: arm-none-eabi-gcc is missing (.ci/run installs it)" >&2
    exit 1
}
if ! rustup component list --installed | grep -q '^llvm-tools'; then
    rustup component add llvm-tools >&2
fi
llvm="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"

cargo test --quiet --locked --manifest-path ci/stack-depth/Cargo.toml \
    --target-dir "${CARGO_TARGET_DIR:-$repo/target}/stack-depth" >&2
cargo build --quiet --release --locked --manifest-path ci/stack-depth/Cargo.toml \
    --target-dir "${CARGO_TARGET_DIR:-$repo/target}/stack-depth"
stack_depth="${CARGO_TARGET_DIR:-$repo/target}/stack-depth/release/stack-depth"

# text data bss of an image (Berkeley format).
sizes() {
    "$llvm/llvm-size" "$1" | awk 'NR == 2 { print $1, $2, $3 }'
}

# The worst-case stack of the image's C entry points; the analysis goes to
# <image>.stack.
stack() {
    "$llvm/llvm-objdump" -d --no-show-raw-insn -C "$1" >"$1.objdump"
    "$llvm/llvm-readobj" --stack-sizes -C "$1" >"$1.sizes"
    "$stack_depth" "$1.objdump" "$1.sizes" ciot_e2e_ --callback ciot_e2e_c::ue::draw_nonce \
        >"$1.stack"
    sed -n 's/^stack: //p' "$1.stack"
}

# The octets of state the library needs: the constant ciot_e2e_ue_state_size
# returns (`movw r0, #N`; `movs r0, #N` then `lsls r0, r0, #S` on
# thumbv6m; `li a0, N` on RISC-V).
state_len() {
    local n shift
    # (awk reads to the end: an early exit would break the pipe. Plain
    # POSIX awk: the arithmetic is the shell's.)
    read -r n shift <<<"$("$llvm/llvm-objdump" -d --no-show-raw-insn "$1" |
        awk '/<ciot_e2e_ue_state_size>:$/ { f = 1; next }
             f && /^$/ { f = 0 }
             f && match($0, /\t(mov[a-z.]*\tr0|li\ta0), #?[0-9a-fx]+/) {
                 n = substr($0, RSTART, RLENGTH); sub(/.*[ #]/, "", n) }
             f && match($0, /\tlsls\tr0, r0, #[0-9a-fx]+/) {
                 s = substr($0, RSTART, RLENGTH); sub(/.*#/, "", s) }
             END { print (n == "" ? 0 : n), (s == "" ? 0 : s) }')"
    echo $((n << shift))
}

# The library alone: every exported entry point is a root of the link.
link_library() {
    local lib="$1" elf="$2" roots
    roots="$("$llvm/llvm-nm" --defined-only -g "$lib" 2>/dev/null |
        awk '$2 == "T" && $3 ~ /^ciot_e2e_/ { print "--undefined=" $3 }' | sort -u)"
    # shellcheck disable=SC2086
    "$llvm/rust-lld" -flavor gnu --gc-sections -e ciot_e2e_ue_init $roots -o "$elf" "$lib"
}

fw=crates/capi/firmware
ref_target=thumbv7em-none-eabi
cflags=(-mcpu=cortex-m4 -mthumb -mfloat-abi=soft -std=c11 -Wall -Wextra -Werror -Os -ffreestanding
    -ffunction-sections -fdata-sections -I crates/capi/include -I "$fw")
ldflags=(-nostdlib -Wl,--gc-sections -Wl,-z,noexecstack -T "$fw/mps2-an386.ld")

echo "footprint: building the library (reference configuration) for every target" >&2
ref_lib="$(device_lib "$ref_target")"
ref_elf="$out/footprint-$ref_target.elf"
arm-none-eabi-gcc "${cflags[@]}" "${ldflags[@]}" -o "$ref_elf" \
    "$fw/startup.c" "$fw/mem.c" "$fw/footprint.c" "$ref_lib" -lgcc

# The no-panic check must be able to fail: the same library with one
# exported function that can panic (feature panic-link-selftest) must not
# link, for the reason the check gives.
selftest_lib="$(device_lib "$ref_target" "$DEVICE_FEATURES_DEFAULT,panic-link-selftest")"
if arm-none-eabi-gcc "${cflags[@]}" "${ldflags[@]}" -o "$out/panic-self-test.elf" \
    "$fw/startup.c" "$fw/mem.c" "$fw/footprint.c" "$selftest_lib" -lgcc \
    >"$out/panic-self-test.log" 2>&1 ||
    ! grep -q "undefined reference to \`ciot_e2e_panic_path_is_linked'" "$out/panic-self-test.log"; then
    echo "footprint: the no-panic self-test did not fail as it must (see $out/panic-self-test.log)" >&2
    exit 1
fi
echo "footprint: no-panic link check: a library with a reachable panic does not link; this one does" >&2

read -r text data bss <<<"$(sizes "$ref_elf")"
state="$(state_len "$ref_elf")"
state_alloc="$(awk '/^#if !defined\(CIOT_E2E_KEPT_CIPHERS\)/ { f = 1 }
    f && sub(/^#define CIOT_E2E_UE_SIZE /, "") { print; f = 0 }' crates/capi/include/ciot_e2e.h)"
ref_stack="$(stack "$ref_elf")"

state_unfit=()
((state <= state_alloc)) || state_unfit+=("$ref_target reference firmware: $state")
printf '\n%-44s %7s %6s %6s %6s %6s\n' "image" "text" "data" "bss" "state" "stack"
printf '%-44s %7s %6s %6s %6s %6s\n' "reference firmware, $ref_target" "$text" "$data" "$bss" "$state" "$ref_stack"
for target in thumbv7em-none-eabi thumbv7em-none-eabihf thumbv6m-none-eabi riscv32imc-unknown-none-elf; do
    lib="$(device_lib "$target")"
    elf="$out/library-$target.elf"
    link_library "$lib" "$elf"
    read -r t d b <<<"$(sizes "$elf")"
    s="$(state_len "$elf")"
    ((s <= state_alloc)) || state_unfit+=("$target: $s")
    printf '%-44s %7s %6s %6s %6s %6s\n' "library alone, $target" "$t" "$d" "$b" "$s" "$(stack "$elf")"
done
cat <<EOF

  state: octets the library uses of the $state_alloc a caller allocates (CIOT_E2E_UE_SIZE,
         which also fits a build with both suites); the reference firmware's bss holds them.
  stack: worst case over the C entry points (ci/stack-depth; the caller's own frame not included,
         nor the random source's, which ciot_e2e_ue_init calls on top of the 'callback:' depth).
  library alone: linked with rust-lld; its mem* routines are compiler-builtins'.

worst-case stack of each C entry point, $ref_target reference firmware (frames in octets;
* = from the prologue, the function has no LLVM stack size):
EOF
grep -v '^stack: ' "$ref_elf.stack" | cut -c1-200
echo
echo "largest symbols of the reference firmware (octets, type, name):"
"$llvm/llvm-nm" --size-sort -S -C "$ref_elf" | tail -n 20 |
    while read -r _ size type name; do printf '%7d %s %s\n' "$((16#$size))" "$type" "${name:0:110}"; done
echo

if ((${#state_unfit[@]})); then
    echo "footprint: the state outgrows the header's CIOT_E2E_UE_SIZE ($state_alloc): ${state_unfit[*]}" >&2
    exit 1
fi
over=()
((text <= max_text)) || over+=("text $text > $max_text")
((data + bss <= max_data_bss)) || over+=("data+bss $((data + bss)) > $max_data_bss")
((state <= max_state)) || over+=("state $state > $max_state")
((ref_stack <= max_stack)) || over+=("stack $ref_stack > $max_stack")
if ((${#over[@]})); then
    echo "footprint: over budget: ${over[*]} (docs/PERFORMANCE.md says what is left and why)"
fi
echo "footprint: text=$text data=$data bss=$bss state=$state stack=$ref_stack"
((${#over[@]} == 0))
