#!/usr/bin/env bash
# Debian's chromium, which tests/test_docs_ui.py drives with Playwright (no browser download).
# Installed with apt-get when missing and we are root; otherwise that test is skipped with a
# reason (under CI=true it fails instead).
set -euo pipefail
browser=${GATEWAY_TEST_CHROMIUM:-/usr/bin/chromium}
[ -x "$browser" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing Debian's chromium (for the /docs browser test)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
  echo "warning: no chromium at $browser; the /docs browser test will be skipped" >&2
fi
