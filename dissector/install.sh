#!/usr/bin/env bash
# Builds the native Wireshark plugin (dissector/plugin/: C over the
# analyzer's static library, crates/analyze-capi) and installs it into the
# personal plugin folder of the Wireshark that is installed:
#   $HOME/.local/lib/wireshark/plugins/<major.minor>/epan/ciot_e2e.so
#
# Needs cargo, a C compiler, make, pkg-config and the Wireshark development
# files (Debian/Ubuntu: apt-get install libwireshark-dev libglib2.0-dev
# gcc make pkg-config). The headers must be those of the Wireshark that
# will load the plugin: a plugin loads only into the major.minor it was
# built for. WIRESHARK_PC names another pkg-config package (a Wireshark
# built from source: PKG_CONFIG_PATH=<prefix>/lib/pkgconfig); see
# dissector/README.md.
#
# Options: --build-only (build, do not install), --dest DIR (install into
# DIR instead of the personal folder).
set -euo pipefail
cd "$(dirname "$0")/.."

build_only=0
dest=""
while (($#)); do
  case "$1" in
    --build-only) build_only=1 ;;
    --dest) dest="$2"; shift ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

pc="${WIRESHARK_PC:-wireshark}"
# The cargo that runs this (a test), else the one on PATH.
cargo="${CARGO:-cargo}"
if ! headers="$(pkg-config --modversion "$pc" 2> /dev/null)"; then
  echo "install.sh: no Wireshark development files (pkg-config $pc);" \
    "install libwireshark-dev (Debian/Ubuntu) or set WIRESHARK_PC/PKG_CONFIG_PATH" >&2
  exit 1
fi
want="$(cut -d. -f1,2 <<< "$headers")"
if command -v tshark > /dev/null && [ -z "${WIRESHARK_PC:-}" ]; then
  running="$(tshark --version 2> /dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)"
  if [ "$(cut -d. -f1,2 <<< "$running")" != "$want" ]; then
    echo "install.sh: the headers are of Wireshark $headers but tshark is $running;" \
      "a plugin loads only into the version it was built for" >&2
    exit 1
  fi
fi

target_dir="$("$cargo" metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
"$cargo" build --release -p ciot-e2e-analyze-capi
make -C dissector/plugin RUST_LIB="$target_dir/release/libciot_e2e_analyze_c.a" \
  WIRESHARK_PC="$pc" PLUGIN_VERSION="$("$cargo" pkgid -p ciot-e2e-analyze-capi | sed 's/.*[#@]//')"
plugin="dissector/plugin/ciot_e2e.so"
if ((build_only)); then
  echo "built $plugin for Wireshark $want"
  exit 0
fi
dest="${dest:-$HOME/.local/lib/wireshark/plugins/$want/epan}"
mkdir -p "$dest"
install -m 0644 "$plugin" "$dest/ciot_e2e.so"
echo "installed $dest/ciot_e2e.so (Wireshark $want)"
if [ "$(id -u)" = 0 ]; then
  echo "note: Wireshark run as root does not load personal plugins;" \
    "run it as a user, or install with --dest $(pkg-config --variable=plugindir "$pc")/epan" >&2
fi
