#!/usr/bin/env bash
# The Wireshark dissector (dissector/ciot_e2e.lua) checked through tshark:
# installs tshark if it is missing, then runs crates/cli/tests/tshark.rs, which compares
# every field and finding of `tshark -T json` with `ciot-e2e dissect --json`
# on generated captures (valid and malformed; pcap and pcapng; Ethernet and
# USER0) and fails on any Lua error. CIOT_E2E_REQUIRE_TSHARK=1 turns the
# test's "skip without tshark" into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v tshark > /dev/null; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  # tshark asks whether non-root users may capture; the noninteractive
  # frontend takes the default (no).
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y tshark
fi
tshark --version | head -1
CIOT_E2E_REQUIRE_TSHARK=1 cargo test --test tshark -- --nocapture
