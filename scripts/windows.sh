#!/usr/bin/env bash
# Builds Torque for Windows (x86_64-pc-windows-gnu) and runs its tests there
# under Wine: clippy with -D warnings, then the conformance suite on every
# Windows backend (iocp and wfmo), then `torque.exe web` on each serving curl from the
# Linux side of the loopback and stopping on Ctrl-C, then the Win32 chat
# demo's self-test in a window under Xvfb, with its screenshot checked.
#
# rustup's download server is out of reach here, and there is no MSVC: std is
# built from source (-Zbuild-std) by Debian's Rust 1.96 (RUSTC_BOOTSTRAP=1),
# linked by mingw-w64, and the test executables run under Debian's Wine 8 as
# cargo's runner (scripts/windows-env.sh). Wine 8 lacks bcryptprimitives.dll,
# which every Rust program imports, so a stand-in built here from
# scripts/wine-aid/ goes on WINEPATH — a test aid only, never shipped. The
# tests are written to run unchanged on real Windows.
#
# Usage: scripts/windows.sh [cargo test arguments for the conformance suite…]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-system-packages.sh platforms windows
source scripts/windows-env.sh

aid="$CARGO_TARGET_DIR/wine-aid"
mkdir -p "$aid"
if [ ! -f "$aid/bcryptprimitives.dll" ] || [ scripts/wine-aid/bcryptprimitives.c -nt "$aid/bcryptprimitives.dll" ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -s -o "$aid/bcryptprimitives.dll" scripts/wine-aid/bcryptprimitives.c -ladvapi32
fi
export WINEPATH="$aid"
# A prefix of the project's own, made on first use (a few seconds).
export WINEPREFIX="${WINEPREFIX:-$CARGO_TARGET_DIR/wine-prefix}"
# Wine's debug output and its "wineserver" messages go nowhere.
export WINEDLLOVERRIDES="mscoree,mshtml="

# clippy 1.96 with build-std flags windows-gnu's thread_local! initializers
# that are already `const` (missing_const_for_thread_local): allowed here only.
# The library, the conformance suite and the backend-choice tests: the other
# test binaries and the benchmarks are Unix-only so far (signals, rlimits,
# fd counting, rusage).
echo "== $WINDOWS_TARGET: cargo clippy (library, conformance suite, backend choice, the torque command) -D warnings"
cargo clippy --locked -Zbuild-std --target "$WINDOWS_TARGET" -p torque -p torque-app --lib --bins --test conformance \
    --test backends -- -D warnings \
    -A clippy::missing_const_for_thread_local
cargo clippy --locked -Zbuild-std --target "$WINDOWS_TARGET" -p torque-demos --no-default-features --features win32 \
    --bin win32-chat -- -D warnings -A clippy::missing_const_for_thread_local
echo "== $WINDOWS_TARGET: rustdoc -D warnings (the Windows-only public items: add_event, EventId, …)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked -Zbuild-std --target "$WINDOWS_TARGET" -p torque --no-deps

# Where Wine deviates from Windows, the case is skipped here by name, with
# what Wine does instead; the test itself stays as real Windows needs it.
known_failures=(
    # A UDP socket's ICMP refusal: Windows fails the next recvfrom with
    # WSAECONNRESET (FD_READ). Wine 8 reports it as FD_CLOSE with
    # WSAECONNREFUSED in WSAEnumNetworkEvents' error codes and then recv
    # finds nothing, so the refusal never reaches the port (traced with
    # wfmo's events). On iocp, whose AFD poll Wine answers from the same
    # socket state, the port never hears it either. The case passes on
    # every Unix backend.
    an_icmp_refusal_reaches_a_connected_port
    # A child writing more than its stdout socket holds: under Wine 8 the
    # child sometimes stays blocked in a WriteFile for good (seen at 4 to
    # 8 MiB of 8 MiB with 64 KiB writes; under load with 8 KiB writes too),
    # while peeking the reactor's end finds nothing to read (WSAEWOULDBLOCK),
    # on both backends. Output that fits the socket buffer (1 MiB) arrives
    # whole (a_megabyte_through_stdin_comes_back_whole).
    large_blocking_writes_from_the_child_arrive_whole
    thirty_two_mib_of_output_arrive_whole
)
skips=()
for name in "${known_failures[@]}"; do
    skips+=(--skip "$name")
done
echo "== $WINDOWS_TARGET: conformance suite under Wine (${#known_failures[@]} case(s) skipped where Wine deviates: see scripts/windows.sh)"
cargo test --locked -Zbuild-std --target "$WINDOWS_TARGET" -p torque --test conformance -- "${skips[@]}" "$@"

echo "== $WINDOWS_TARGET: backend choice under Wine (names, TORQUE_REACTOR in a child process, capabilities)"
cargo test --locked -Zbuild-std --target "$WINDOWS_TARGET" -p torque --test backends

echo "== $WINDOWS_TARGET: torque.exe web under Wine, with curl, on each Windows backend"
cargo build --locked -Zbuild-std --target "$WINDOWS_TARGET" -p torque-app --bin torque
exe="$CARGO_TARGET_DIR/$WINDOWS_TARGET/debug/torque.exe"
root=$(mktemp -d)
log=$(mktemp)
server=
trap 'kill "$server" 2>/dev/null || true; rm -rf "$root" "$log"' EXIT
echo hello > "$root/hello.txt"
mkdir "$root/sub"
head -c 3000000 /dev/urandom > "$root/big.bin"
check() { # expected-status url [curl args…]
    local want=$1 url=$2
    shift 2
    got=$(curl -s -o /dev/null -w "%{http_code}" "$@" "$url")
    [ "$got" = "$want" ] || { echo "GET $url: $got, not $want"; cat "$log"; exit 1; }
    echo "GET $url: $got"
}
for backend in iocp wfmo; do
    echo "-- torque.exe -r $backend web"
    : > "$log"
    port=$((20000 + RANDOM % 20000))
    /usr/lib/wine/wine64 "$exe" -r "$backend" web --path "Z:${root//\//\\}" --listen "tcp:$port:interface=127.0.0.1" 2>"$log" &
    server=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$log" && break
        sleep 0.2
    done
    base="http://127.0.0.1:$port"
    check 200 "$base/hello.txt"
    [ "$(curl -s "$base/hello.txt")" = hello ] || { echo "wrong body"; exit 1; }
    check 200 "$base/"
    curl -s "$base/" | grep -q 'href="./sub/"' || { echo "the listing lacks sub/"; exit 1; }
    curl -s -o "$root/got.bin" "$base/big.bin"
    cmp "$root/got.bin" "$root/big.bin" || { echo "the 3 MB file differs"; exit 1; }
    rm "$root/got.bin"
    echo "3 MB file: identical"
    check 206 "$base/big.bin" -H "Range: bytes=0-9"
    check 403 "$base/..%5c..%5cwindows%5cwin.ini"
    check 403 "$base/C:%5cwindows"
    check 404 "$base/nothere"
    # Ctrl-C: Wine turns SIGINT into CTRL_C_EVENT for the console handler.
    kill -INT "$(pgrep -f "torque.exe -r $backend web" | head -1)"
    wait "$server"
    if ! grep -q "received a stop signal" "$log" || ! grep -q "stopped" "$log"; then
        echo "torque.exe -r $backend did not stop gracefully on Ctrl-C"
        cat "$log"
        exit 1
    fi
    echo "stopped gracefully on Ctrl-C"
done

echo "-- torque.exe -r iocp procmon keeping torque.exe web running (a child process)"
: > "$log"
port=$((20000 + RANDOM % 20000))
/usr/lib/wine/wine64 "$exe" -r iocp procmon --kill-time 2s -- "Z:${exe//\//\\}" web --path "Z:${root//\//\\}" \
    --listen "tcp:$port:interface=127.0.0.1" 2>"$log" &
server=$!
base="http://127.0.0.1:$port"
for _ in $(seq 100); do
    curl -s -o /dev/null "$base/hello.txt" && break
    sleep 0.2
done
check 200 "$base/hello.txt"
kill -INT "$(pgrep -f "torque.exe -r iocp procmon" | head -1)"
wait "$server"
if ! grep -q "stopping (SIGTERM)" "$log" || ! grep -q "torque_app::cli: stopped" "$log"; then
    echo "torque.exe procmon did not stop its child and itself on Ctrl-C"
    cat "$log"
    exit 1
fi
echo "procmon served through its child and stopped it on Ctrl-C"

echo "== $WINDOWS_TARGET: the Win32 chat demo's self-test under Xvfb"
cargo build --locked -Zbuild-std --target "$WINDOWS_TARGET" -p torque-demos --no-default-features --features win32 \
    --bin win32-chat
# The earlier stages started Wine's server (and its desktop) with no display;
# a window needs one started under Xvfb's.
/usr/lib/wine/wineserver -k 2>/dev/null || true
/usr/lib/wine/wineserver -w 2>/dev/null || true
shot="$CARGO_TARGET_DIR/screenshots/win32-chat.png"
rm -f "$shot"
mkdir -p "$(dirname "$shot")"
timeout 120 xvfb-run -a /usr/lib/wine/wine64 "$CARGO_TARGET_DIR/$WINDOWS_TARGET/debug/win32-chat.exe" \
    --self-test --screenshot "Z:${shot//\//\\}"
# The screenshot must show text: dark pixels on the window's light colour
# (its rows are stored unfiltered, so zlib alone reads them).
python3 - "$shot" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
pos, idat, width, height = 8, b"", 0, 0
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        width, height = struct.unpack(">II", body[:8])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + length
raw = zlib.decompress(idat)
row = 1 + 3 * width
dark = sum(
    1
    for y in range(height)
    for x in range(width)
    if max(raw[y * row + 1 + 3 * x:y * row + 4 + 3 * x]) < 80
)
print(f"win32-chat screenshot: {width}x{height}, {dark} text pixels")
sys.exit(0 if dark > 300 else 1)
PY
