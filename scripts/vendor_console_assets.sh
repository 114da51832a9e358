#!/usr/bin/env bash
# Vendor the console's front-end assets from the npm registry (build time, never a CDN at run time).
#   bash scripts/vendor_console_assets.sh      → pipeline/console/static/vendor/leaflet/{leaflet.js,leaflet.css,images/}
# Idempotent: does nothing when the pinned version is already there. Needs `npm` (apt-get install npm).
set -euo pipefail
cd "$(dirname "$0")/.."
LEAFLET_VERSION="1.9.4"
DEST="pipeline/console/static/vendor"
STAMP="$DEST/leaflet/VERSION"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$LEAFLET_VERSION" ]]; then
  exit 0
fi
command -v npm >/dev/null || { echo "vendor_console_assets: npm is missing (apt-get install npm)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
( cd "$work" && npm pack --silent "leaflet@${LEAFLET_VERSION}" >/dev/null )
tar -xzf "$work"/leaflet-"${LEAFLET_VERSION}".tgz -C "$work"
rm -rf "$DEST/leaflet"
mkdir -p "$DEST/leaflet"
cp "$work/package/dist/leaflet.js" "$work/package/dist/leaflet.css" "$work/package/LICENSE" "$DEST/leaflet/"
cp -r "$work/package/dist/images" "$DEST/leaflet/"
echo "$LEAFLET_VERSION" > "$STAMP"
echo "vendor_console_assets: leaflet $LEAFLET_VERSION → $DEST/leaflet"
