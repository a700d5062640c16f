#!/usr/bin/env bash
# Twisted's own reactor tests, from the Twisted release on PyPI, on Torque's
# reactor and on Twisted's epollreactor side by side (scripts/python-env.sh
# builds the environment). Prints the per-module table and every test that
# passes on epoll but not on Torque; fails if Torque passes fewer than 95 % of
# the tests epoll passes. Then torque_twisted's own tests (real clients: curl,
# Twisted's), under trial --reactor=torque.
#
# Torque's reactor runs once per Torque backend underneath it
# (TORQUE_SUITE_BACKENDS, default "epoll io_uring poll select"; each is compared
# with epollreactor).
#
# Usage: scripts/twisted-suite.sh [MODULE…]   (default: the 18 modules below)
# Results: target/twisted-suite/epoll.json, torque-BACKEND.json and
# table-BACKEND.md.
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

echo "== Twisted's tests on epollreactor (${#modules[@]} modules)"
# Bounded: a reactor that hangs cannot take the whole budget.
timeout 900 "$python" torque-python/suite/run_reactor.py --reactor epoll --out "$out/epoll.json" "${modules[@]}"
for backend in ${TORQUE_SUITE_BACKENDS:-epoll io_uring poll select}; do
    echo "== Twisted's tests on Torque's reactor over $backend"
    TORQUE_REACTOR=$backend timeout 900 "$python" torque-python/suite/run_reactor.py \
        --reactor torque --out "$out/torque-$backend.json" "${modules[@]}"
    "$python" torque-python/suite/compare.py "$out/epoll.json" "$out/torque-$backend.json" \
        --markdown "$out/table-$backend.md"
done

echo "== torque_twisted's own tests (trial --reactor=torque)"
(cd "$out" && timeout 600 "$(dirname "$python")/trial" --reactor=torque torque_twisted)
