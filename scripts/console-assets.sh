#!/usr/bin/env bash
# The web console's browser libraries (htmx, ECharts), installed from the npm registry at the
# versions console/package-lock.json pins (`npm ci`, integrity-checked) and copied with their
# licences into gateway/console/static/vendor/ (gitignored). Nothing is fetched at run time.
# Without npm the gateway still runs; /console/ then says which command to run.
set -euo pipefail
cd "$(dirname "$0")/.."
vendor=gateway/console/static/vendor
stamp="$vendor/.built-$(sha256sum console/package-lock.json "$0" | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
  echo "warning: no npm: the web console's assets are not built (install Node.js and npm," \
       "then run scripts/console-assets.sh)" >&2
  exit 0
fi
echo "==> building the web console's assets (npm ci in console/)"
(cd console && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
rm -rf "$vendor"
mkdir -p "$vendor/licenses"
modules=console/node_modules
cp "$modules/htmx.org/dist/htmx.min.js" "$vendor/htmx.min.js"
cp "$modules/echarts/dist/echarts.min.js" "$vendor/echarts.min.js"
# echarts.min.js bundles zrender and tslib: their licences go along with ECharts' own.
cp "$modules/htmx.org/LICENSE" "$vendor/licenses/htmx.org.LICENSE"
cp "$modules/echarts/LICENSE" "$vendor/licenses/echarts.LICENSE"
cp "$modules/echarts/NOTICE" "$vendor/licenses/echarts.NOTICE"
cp "$modules/echarts/licenses/LICENSE-d3" "$vendor/licenses/echarts.LICENSE-d3"
cp "$modules/zrender/LICENSE" "$vendor/licenses/zrender.LICENSE"
cp "$modules/tslib/LICENSE.txt" "$vendor/licenses/tslib.LICENSE"
touch "$stamp"
