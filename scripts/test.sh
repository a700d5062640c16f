#!/usr/bin/env bash
# The test command: installs the system packages the tests need (if missing),
# then runs every test in the workspace — the conformance suite on every
# backend, interleaved, embedded and GLib-driven; the interop tests; and the
# GUI demos' self-tests under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
# torque-app with `glib`, so `torque -r glib` is tested too (GTK and GLib's
# development files are installed above for torque-glib anyway).
cargo test --workspace --features torque-app/glib "$@"
