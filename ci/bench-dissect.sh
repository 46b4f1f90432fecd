#!/usr/bin/env bash
# Dissect vs tshark: one 1,000,000-message capture, dissected once by
# `ciot-e2e dissect --json` and once by tshark with the Lua dissector, same
# file, same machine, output to /dev/null. Prints both wall-clock times and
# the ratio (goal: ciot-e2e at least 50x faster). Needs tshark (ci/tshark.sh
# installs it).
#
#   ci/bench-dissect.sh [messages]      (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet --bin ciot-e2e
BIN="$CARGO_TARGET_DIR/release/ciot-e2e"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CAP="$WORK/bench.pcap"

"$BIN" gen-pcap --messages "$N" --malformed-ratio 0.1 --seed 7 "$CAP"
echo "capture: $N messages, $(stat -c %s "$CAP") octets"

now() { date +%s.%N; }

t0=$(now)
"$BIN" dissect --json "$CAP" > /dev/null
t1=$(now)
ours=$(echo "$t1 - $t0" | bc -l)
echo "ciot-e2e dissect --json: ${ours} s   ($BIN dissect --json $CAP > /dev/null)"

t0=$(now)
tshark -X lua_script:dissector/ciot_e2e.lua -r "$CAP" -T json > /dev/null 2> "$WORK/tshark.err"
t1=$(now)
theirs=$(echo "$t1 - $t0" | bc -l)
# Field-by-field correctness is ci/tshark.sh's job; here only a script that
# failed to load would make the time meaningless.
if grep -q "Lua: Error" "$WORK/tshark.err"; then
  echo "tshark reported a Lua error" >&2
  exit 1
fi
echo "tshark + ciot_e2e.lua -T json: ${theirs} s   (tshark -X lua_script:dissector/ciot_e2e.lua -r $CAP -T json > /dev/null)"
ratio=$(echo "$theirs / $ours" | bc -l)
printf 'ratio: %.1fx\n' "$ratio"
