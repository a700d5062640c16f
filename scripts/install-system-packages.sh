#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages a job needs, if any are missing (a no-op
# otherwise). Runs apt-get as root, or through sudo.
#
# Usage: scripts/install-system-packages.sh [GROUP…]   (default: tests)
#
# tests (scripts/test.sh):
#   curl, openssl, ca-certificates: the HTTP(S) client and TLS peers of the
#     interop tests, and the system trust store TLS clients verify against;
#   pkg-config, libgtk-4-dev, libx11-xcb-dev: build torque-glib (GLib, GIO) and
#     the GUI demos (GTK 4; winit's X11 backend);
#   xvfb, xauth: xvfb-run, the X server the GUI demos' self-tests draw on;
#   libxkbcommon-x11-0, libxcursor1, libxrandr2, libxi6: loaded by winit at run time;
#   python3, python3-venv: build torque_twisted (PyO3 finds the interpreter)
#     and the venv Twisted's tests run in (scripts/python-env.sh).
# platforms (scripts/check-platforms.sh):
#   rustc-web, cargo-web, rust-web-src, rust-web-clippy: Debian's Rust 1.96
#     with the standard library's sources, to build std for FreeBSD and macOS
#     (-Zbuild-std) and run clippy there;
#   clang: compiles ring's C code for the Apple targets.
# windows (scripts/windows.sh; with platforms):
#   gcc-mingw-w64-x86-64: links Windows executables and compiles ring's C
#     and the Wine test aid (scripts/wine-aid/);
#   wine64: runs the Windows tests and the torque.exe checks under Wine;
#   xvfb, xauth, python3: the Win32 demo's window under Xvfb, and the check
#     of its screenshot.
# bench (the benchmarks; not used by CI):
#   wrk, nginx-light: the web benchmark's load generator and peer;
#   util-linux: taskset, to pin servers and load generators to a core.
set -euo pipefail

groups=("$@")
[ "${#groups[@]}" -gt 0 ] || groups=(tests)

PACKAGES=()
for group in "${groups[@]}"; do
    case "$group" in
        tests)
            PACKAGES+=(
                curl openssl ca-certificates
                pkg-config libgtk-4-dev libx11-xcb-dev
                xvfb xauth
                libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6
                python3 python3-venv
            )
            ;;
        platforms)
            PACKAGES+=(rustc-web cargo-web rust-web-src rust-web-clippy clang)
            ;;
        windows)
            PACKAGES+=(gcc-mingw-w64-x86-64 wine64 xvfb xauth python3)
            ;;
        bench)
            PACKAGES+=(wrk nginx-light curl util-linux)
            ;;
        *)
            echo "unknown package group: $group (tests, platforms, windows, bench)" >&2
            exit 2
            ;;
    esac
done

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

echo "installing system packages: ${missing[*]}"
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq "${missing[@]}"
