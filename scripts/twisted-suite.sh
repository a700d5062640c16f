#!/usr/bin/env bash
# Twisted's own reactor tests, from the Twisted release on PyPI, on Torque's
# reactor and on Twisted's epollreactor side by side (scripts/python-env.sh
# builds the environment). Prints the per-module table and every test that
# passes on epoll but not on Torque; fails if Torque passes fewer than 95 % of
# the tests epoll passes. Then torque_twisted's own tests (real clients: curl,
# Twisted's), under trial --reactor=torque.
#
# Usage: scripts/twisted-suite.sh [MODULE…]   (default: the 18 modules below)
# Results: target/twisted-suite/{epoll,torque}.json and table.md.
# TORQUE_REACTOR picks the Torque backend under the Python reactor.
set -euo pipefail
cd "$(dirname "$0")/.."

modules=("$@")
if [ "${#modules[@]}" -eq 0 ]; then
    modules=(
        twisted.internet.test.test_core twisted.internet.test.test_time
        twisted.internet.test.test_threads twisted.internet.test.test_fdset
        twisted.internet.test.test_tcp twisted.internet.test.test_unix
        twisted.internet.test.test_udp twisted.internet.test.test_tls
        twisted.internet.test.test_process twisted.internet.test.test_socket
        twisted.internet.test.test_endpoints twisted.internet.test.test_base
        twisted.test.test_internet twisted.test.test_tcp twisted.test.test_udp
        twisted.test.test_process twisted.test.test_ssl twisted.test.test_defer
    )
fi

scripts/python-env.sh
python=$(realpath -m "${TORQUE_PYTHON_VENV:-target/python}")/bin/python
out=target/twisted-suite
mkdir -p "$out"

for reactor in epoll torque; do
    echo "== Twisted's tests on $reactor (${#modules[@]} modules)"
    # Bounded: a reactor that hangs cannot take the whole budget.
    timeout 900 "$python" torque-python/suite/run_reactor.py --reactor "$reactor" --out "$out/$reactor.json" "${modules[@]}"
done
"$python" torque-python/suite/compare.py "$out/epoll.json" "$out/torque.json" --markdown "$out/table.md"

echo "== torque_twisted's own tests (trial --reactor=torque)"
(cd "$out" && timeout 600 "$(dirname "$python")/trial" --reactor=torque torque_twisted)
