#!/usr/bin/env bash
# Fuzzes the HTTP request parser of `torque web` for a bounded time:
#   scripts/fuzz.sh [SECONDS]      (default 60)
# A crash stops the run and leaves its input in torque-app/fuzz/artifacts/;
# once fixed, copy it to torque-app/fuzz/regressions/request_head/, where
# `cargo test` replays it (tests/fuzz_regressions.rs).
#
# libFuzzer's instrumentation needs rustc's unstable flags: this uses Debian's
# rustc (`scripts/install-system-packages.sh platforms`) with RUSTC_BOOTSTRAP,
# or a nightly toolchain if that is what `cargo` is.
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")/.."
root="$PWD"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
if [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ]; then
    export PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1
fi
export CARGO_TARGET_DIR="$root/target/fuzz"
mkdir -p torque-app/fuzz/corpus/request_head
cd torque-app
cargo fuzz run request_head --sanitizer none \
    fuzz/corpus/request_head fuzz/seeds/request_head \
    -- -max_total_time="$seconds" -max_len=4096
