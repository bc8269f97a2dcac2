#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install the gateway with the given dependency groups.
# Usage: scripts/bootstrap.sh [group ...]     e.g. scripts/bootstrap.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "error: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  py=$(pick_python)
  echo "==> creating .venv with $($py --version)"
  "$py" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml "$0" | sha256sum | cut -c1-16)-$(echo "$*" | tr ' ' '_')
if [ ! -f "$stamp" ]; then
  echo "==> installing dependencies ${*:+(groups: $*)}"
  .venv/bin/python -m pip install --quiet --upgrade 'pip>=25.1'
  groups=()
  for g in "$@"; do groups+=(--group "$g"); done
  .venv/bin/python -m pip install --quiet -e . "${groups[@]}"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# The web console's browser libraries (npm; skipped with a warning when npm is missing).
scripts/console-assets.sh
