#!/usr/bin/env bash
# Echo round trips against `torque.exe echo` under Wine, on each Windows
# backend, side by side: one connection doing ping-pong, then 100
# connections at once. The client is Python on the Linux side of the
# loopback. Wine's server sits under every Windows socket call, so these
# figures compare the backends with each other under Wine; they say nothing
# about real Windows.
#
# Usage: scripts/windows-bench.sh [round trips per connection, default 20000]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20000}

scripts/install-system-packages.sh platforms windows
source scripts/windows-env.sh
aid="$CARGO_TARGET_DIR/wine-aid"
mkdir -p "$aid"
if [ ! -f "$aid/bcryptprimitives.dll" ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -s -o "$aid/bcryptprimitives.dll" scripts/wine-aid/bcryptprimitives.c -ladvapi32
fi
export WINEPATH="$aid" WINEPREFIX="${WINEPREFIX:-$CARGO_TARGET_DIR/wine-prefix}" WINEDLLOVERRIDES="mscoree,mshtml="
cargo build --locked --release -Zbuild-std --target "$WINDOWS_TARGET" -p torque-app --bin torque
exe="$CARGO_TARGET_DIR/$WINDOWS_TARGET/release/torque.exe"

for backend in iocp wfmo; do
    port=$((20000 + RANDOM % 20000))
    log=$(mktemp)
    /usr/lib/wine/wine64 "$exe" -r "$backend" echo --workers 1 --listen "tcp:$port:interface=127.0.0.1" 2>"$log" &
    server=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$log" && break
        sleep 0.2
    done
    python3 - "$backend" "$port" "$rounds" <<'PY'
import socket, sys, time, threading
backend, port, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def ping_pong(n, out):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = b"x" * 64
    for _ in range(n):
        s.sendall(message)
        got = 0
        while got < len(message):
            got += len(s.recv(4096))
    s.close()
    out.append(n)

done = []
start = time.perf_counter()
ping_pong(rounds, done)
one = time.perf_counter() - start
print(f"{backend}: 1 connection, {rounds} round trips of 64 B: {one / rounds * 1e6:.1f} us each")

# The wfmo backend waits on at most 62 sockets: 50 connections fit both.
conns, per = 50, max(rounds // 50, 100)
threads, done = [], []
start = time.perf_counter()
for _ in range(conns):
    t = threading.Thread(target=ping_pong, args=(per, done))
    t.start()
    threads.append(t)
for t in threads:
    t.join()
many = time.perf_counter() - start
print(f"{backend}: {conns} connections x {per} round trips: {conns * per / many:.0f} round trips/s")
PY
    kill -INT "$(pgrep -f "torque.exe -r $backend echo" | head -1)" 2>/dev/null || true
    wait "$server" || true
    rm -f "$log"
done
