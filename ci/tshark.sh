#!/usr/bin/env bash
# The Wireshark dissectors checked through tshark: installs tshark, the
# Wireshark development files and the build tools if they are missing, then
# runs crates/cli/tests/tshark.rs, which compares every field and finding
# of `tshark -T json` with `ciot-e2e dissect --json` on generated captures
# (valid and malformed; pcap and pcapng; Ethernet and USER0) for the Lua
# dissector (dissector/ciot_e2e.lua), and for the native plugin
# (dissector/plugin/, built and installed by dissector/install.sh into a
# fresh home folder) also with the key logs, on the demo's captures of both
# suites and on a capture with nonce reuse, plaintext and findings frame by
# frame. Fails on any error tshark reports. CIOT_E2E_REQUIRE_TSHARK=1 and
# CIOT_E2E_REQUIRE_PLUGIN=1 turn the test's "skip without tshark" and "skip
# without the development files" into failures.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v tshark > /dev/null || missing+=(tshark)
pkg-config --exists wireshark 2> /dev/null || missing+=(libwireshark-dev libglib2.0-dev)
for tool in gcc make pkg-config; do
  command -v "$tool" > /dev/null || missing+=("$tool")
done
# tshark run as root loads no personal plugins: the test runs it as nobody
# with setpriv (util-linux).
command -v setpriv > /dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  # tshark asks whether non-root users may capture; the noninteractive
  # frontend takes the default (no).
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
    "${missing[@]}" libc6-dev
fi
tshark --version 2> /dev/null | head -1
echo "Wireshark development files $(pkg-config --modversion wireshark)"
CIOT_E2E_REQUIRE_TSHARK=1 CIOT_E2E_REQUIRE_PLUGIN=1 cargo test -p ciot-e2e-cli --test tshark -- --nocapture
