#!/bin/sh
# Install newsletter into ./.venv with nothing but python3 (3.11+); no root, no system pip.
#   ./install.sh            the tool:           .venv/bin/newsletter
#   ./install.sh '.[test]'  and the test tools: .venv/bin/python -m pytest -q
set -eu
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv
  if ! python3 -m venv .venv >/dev/null 2>&1; then
    # Debian and Ubuntu ship python3 without ensurepip (that is python3-venv): make the venv
    # without pip, then fetch pip itself from the package index.
    rm -rf .venv
    python3 -m venv --without-pip .venv
    .venv/bin/python tools/bootstrap_pip.py
  fi
fi
.venv/bin/python -m pip install -q "${1:-.}"
echo "Installed into $(pwd)/.venv: run $(pwd)/.venv/bin/newsletter (or '. .venv/bin/activate' first)."
