#!/usr/bin/env bash
# The service's figures for docs/PERFORMANCE.md: the EESE service's
# datagram rate against a bare UDP echo server with the same socket loop
# (10,000 UEs, 32-octet payloads, one run, loopback), restart to serving
# with 1,000,000 sessions in the state file, and state writes per 1,000
# messages and per rekey. Not part of CI (a benchmark, not a test).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# One socket per UE.
ulimit -n "$(ulimit -Hn)"
cargo bench -p ciot-e2e-service --bench service "$@"
