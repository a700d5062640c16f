#!/usr/bin/env bash
# The test command: installs the system packages the tests need (if missing),
# then runs every test in the workspace — the conformance suite on every
# backend, interleaved, embedded and GLib-driven; the interop tests; the GUI
# demos' self-tests under Xvfb; then torque_twisted, Torque's reactor for
# Python's Twisted: built with pip into a venv, judged by Twisted's own
# reactor tests beside epollreactor, and its own tests (scripts/twisted-suite.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
# torque-app with `glib`, so `torque -r glib` is tested too (GTK and GLib's
# development files are installed above for torque-glib anyway).
cargo test --workspace --features torque-app/glib "$@"
scripts/twisted-suite.sh
