#!/usr/bin/env bash
# Wireshark plugin vs Lua dissector vs ciot-e2e dissect (issue 25): one
# capture (default 100,000 messages, 10 % malformed, with its key log), and
# in each of three rounds, one after the other:
#   tshark + Lua dissector -T json                 (decode only)
#   tshark + plugin -T json                         (decode only)
#   tshark + plugin -T json with the key log        (decrypt)
#   ciot-e2e dissect --json                         (decode only)
#   ciot-e2e dissect --json --keylog                (decrypt)
#   tshark -T json with ciot_e2e disabled           (tshark's own floor)
# Prints every time, the median of each over the rounds and the ratios of
# the medians. The plugin is installed by dissector/install.sh into a
# temporary home folder; as root tshark runs as nobody (root loads no
# personal plugins). Needs tshark and the Wireshark development files
# (ci/tshark.sh installs them).
#
#   ci/bench-plugin.sh [messages] [rounds]     (default 100000 3)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100000}"
ROUNDS="${2:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet --bin ciot-e2e
BIN="$CARGO_TARGET_DIR/release/ciot-e2e"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/home" "$WORK/empty"
CAP="$WORK/bench.pcap"
KEYS="$WORK/bench.keys"
LUA="$WORK/ciot_e2e.lua"
cp dissector/ciot_e2e.lua "$LUA"

"$BIN" gen-pcap --messages "$N" --malformed-ratio 0.1 --seed 7 --keylog "$KEYS" "$CAP"
echo "capture: $N messages, $(stat -c %s "$CAP") octets"
# rustup and cargo find their folders through HOME unless told.
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
HOME="$WORK/home" RUSTUP_HOME="$rustup_home" CARGO_HOME="$cargo_home" \
  bash dissector/install.sh > /dev/null
chmod -R a+rX "$WORK"

as_user=()
if [ "$(id -u)" = 0 ]; then
  as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
fi

now() { date +%s.%N; }
declare -A times
run() {
  local name="$1"
  shift
  local t0 t1
  t0=$(now)
  "$@" > /dev/null 2> "$WORK/err"
  t1=$(now)
  if grep -qi "error" "$WORK/err"; then
    echo "$name reported an error:" >&2
    cat "$WORK/err" >&2
    exit 1
  fi
  local t
  t=$(echo "$t1 - $t0" | bc -l)
  times[$name]="${times[$name]:-} $t"
  printf '  %-24s %8.2f s\n' "$name" "$t"
}

for r in $(seq 1 "$ROUNDS"); do
  echo "round $r"
  run lua env HOME="$WORK/empty" tshark -X "lua_script:$LUA" -r "$CAP" -T json
  run plugin "${as_user[@]}" env HOME="$WORK/home" tshark -r "$CAP" -T json
  run plugin-keylog "${as_user[@]}" env HOME="$WORK/home" tshark -r "$CAP" -T json \
    -o "ciot_e2e.keylog_file:$KEYS"
  run dissect "$BIN" dissect --json "$CAP"
  run dissect-keylog "$BIN" dissect --json --keylog "$KEYS" "$CAP"
  run tshark-floor "${as_user[@]}" env HOME="$WORK/home" tshark -r "$CAP" -T json \
    --disable-protocol ciot_e2e
done

median() { tr ' ' '\n' <<< "$1" | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "medians of $ROUNDS:"
declare -A m
for k in lua plugin plugin-keylog dissect dissect-keylog tshark-floor; do
  m[$k]=$(median "${times[$k]}")
  printf '  %-24s %8.2f s\n' "$k" "${m[$k]}"
done
ratio() { echo "$1 / $2" | bc -l; }
printf 'tshark: Lua / plugin (decode only):            %.2fx\n' "$(ratio "${m[lua]}" "${m[plugin]}")"
printf 'plugin: with key log / decode only:            %.2fx\n' "$(ratio "${m[plugin-keylog]}" "${m[plugin]}")"
printf 'tshark + plugin + key log / dissect --keylog:  %.1fx\n' "$(ratio "${m[plugin-keylog]}" "${m[dissect-keylog]}")"
printf 'tshark + plugin / dissect (decode only):       %.1fx\n' "$(ratio "${m[plugin]}" "${m[dissect]}")"
printf 'tshark + Lua / dissect (decode only):          %.1fx\n' "$(ratio "${m[lua]}" "${m[dissect]}")"
