#!/usr/bin/env bash
# Makes the Python environment torque_twisted is tested in: a venv with Twisted
# from PyPI (with its test extras) and torque_twisted built from ./torque-python
# as a user would get it (`pip install ./torque-python`), compiled into ./target.
#
# Usage: scripts/python-env.sh [PACKAGE…]   extra packages to install (e.g. uvloop)
# The venv is target/python (TORQUE_PYTHON_VENV overrides); Twisted's version is
# TWISTED_VERSION (default: the one the README's figures were made with).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(realpath -m "${TORQUE_PYTHON_VENV:-target/python}")
twisted=${TWISTED_VERSION:-26.10.0}
pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"${pip[@]}" "maturin>=1.7,<2" "twisted[tls,test]==$twisted" "$@"
# Built here rather than in an isolated environment, so maturin is not fetched
# again and cargo reuses ./target.
PATH="$venv/bin:$PATH" CARGO_TARGET_DIR="$PWD/target" "${pip[@]}" --no-build-isolation --no-deps --force-reinstall ./torque-python
