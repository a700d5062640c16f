#!/usr/bin/env bash
# Compile-checks Torque for the platforms CI cannot run: FreeBSD and macOS
# (Apple silicon and Intel). `cargo check --all-targets` of torque, torque-app
# and torque-cf with their tests, examples and benches, then clippy with
# -D warnings, per target.
#
# rustup's download server is out of reach here, so the other targets' std is
# built from source (-Zbuild-std) with Debian's Rust 1.96 (rustc-web,
# cargo-web, rust-web-src, rust-web-clippy), RUSTC_BOOTSTRAP=1 allowing the
# unstable flag on a stable compiler. rustup's toolchain stays the default for
# everything else: only this script puts /usr/bin first on its PATH. Its
# target directory is target/platforms, apart from rustup's builds.
#
# ring (rustls's crypto) compiles C for the target. For the Apple targets that
# needs clang and one SDK header, TargetConditionals.h: a stand-in is in
# scripts/apple-sdk-stub/, and ring is told not to include libc headers
# (RING_CORE_NOSTDLIBINC), so no SDK is needed. Nothing is linked, so no
# Apple or FreeBSD linker or library is needed either.
#
# Usage: scripts/check-platforms.sh [TARGET…]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-system-packages.sh platforms

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(x86_64-unknown-freebsd aarch64-apple-darwin x86_64-apple-darwin)

export PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/platforms"
export CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=never
stub="$PWD/scripts/apple-sdk-stub"
packages=(-p torque -p torque-app -p torque-cf)

for target in "${targets[@]}"; do
    case "$target" in
        *-apple-*)
            var=${target//-/_}
            export "CC_${var}=clang"
            export "CFLAGS_${var}=-ffreestanding -isystem ${stub} -DRING_CORE_NOSTDLIBINC=1"
            ;;
    esac
    echo "== $target: cargo check --all-targets"
    cargo check --locked -Zbuild-std --target "$target" "${packages[@]}" --all-targets
    echo "== $target: cargo clippy --all-targets -D warnings"
    cargo clippy --locked -Zbuild-std --target "$target" "${packages[@]}" --all-targets -- -D warnings
done
