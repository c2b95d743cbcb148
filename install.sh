#!/bin/sh
# Install newsletter into ./.venv with nothing but python3 (3.11+); no root, no system pip.
# Every version comes from uv.lock, the versions CI last passed with (see "Dependencies" in the
# README for refreshing it on purpose).
#   ./install.sh            the tool:           .venv/bin/newsletter
#   ./install.sh '.[test]'  and the test tools: .venv/bin/python -m pytest -q
#   ./install.sh '.[postgres]'  and the PostgreSQL driver, for database_url = "postgresql://..."
set -eu
cd "$(dirname "$0")"
UV_VERSION=0.13.10  # the lock tool itself; moved on purpose, together with uv.lock

# '.[test]', '.[postgres]' or '.[test,postgres]': the extras of pyproject.toml, as pip spells them.
extras=""
case "${1:-.}" in
  .) ;;
  '.['*']')
    names=$(printf '%s' "$1" | sed 's/^\.\[//; s/\]$//' | tr ',' ' ')
    for name in $names; do extras="$extras --extra $name"; done ;;
  *) echo "usage: ./install.sh ['.[test]' | '.[postgres]' | '.[test,postgres]']" >&2; exit 2 ;;
esac

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
if [ "$(.venv/bin/uv --version 2>/dev/null)" != "uv $UV_VERSION" ]; then
  .venv/bin/python -m pip install -q "uv==$UV_VERSION"
fi
# --frozen: install what uv.lock says, never re-resolve; --inexact: keep pip and uv themselves;
# --compile-bytecode as pip does, else every command compiles its imports again where
# PYTHONDONTWRITEBYTECODE is set (startup goes from tenths of a second to seconds).
# shellcheck disable=SC2086
UV_PROJECT_ENVIRONMENT=.venv .venv/bin/uv sync -q --frozen --inexact --no-editable --compile-bytecode --reinstall-package paper-digest-newsletter $extras
echo "Installed into $(pwd)/.venv: run $(pwd)/.venv/bin/newsletter (or '. .venv/bin/activate' first)."
