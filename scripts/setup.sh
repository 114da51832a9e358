#!/usr/bin/env bash
# Set up minewatch on a fresh Debian machine (run as root, or with sudo available).
#   bash scripts/setup.sh          runtime: .venv with the daemon's packages, the sample clip
#   bash scripts/setup.sh --dev    also test tools, Mosquitto, an RTSP server (GStreamer), training extras
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1

SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"

apt_pkgs=()
python3 -m venv --help >/dev/null 2>&1 || apt_pkgs+=(python3-venv python3-pip)
if [[ $DEV -eq 1 ]]; then
  # Mosquitto for the MQTT tests; GStreamer's RTSP server (driven by /usr/bin/python3) for the RTSP tests.
  for p in mosquitto openssl python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
           gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-rtsp \
           chromium chromium-driver postgresql; do
    dpkg -s "$p" >/dev/null 2>&1 || apt_pkgs+=("$p")
  done
  # npm vendors the console's Leaflet; any npm will do (Debian's, or one that came with Node.js)
  command -v npm >/dev/null 2>&1 || apt_pkgs+=(npm)
fi
if [[ ${#apt_pkgs[@]} -gt 0 ]]; then
  echo "setup: apt-get install ${apt_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

# pip, quiet but for real problems; its exit status is kept (a failed install stops the setup)
pip_install() {
  set +e
  .venv/bin/python -m pip install -q "$@" 2>&1 | grep -v -e '^WARNING: Location' -e 'BuildBackendWarning' -e '^ *!!'
  local rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}
[[ -x .venv/bin/python ]] || python3 -m venv .venv
pip_install --upgrade pip
if [[ $DEV -eq 1 ]]; then
  pip_install -e ".[dev,train,console,onvif]"
else
  pip_install -e .
fi
.venv/bin/python -c "import pipeline, av, onnxruntime, cv2, shapely, pyproj, paho.mqtt" \
  || { echo "setup: the Python packages did not install (see pip's output above)" >&2; exit 1; }

# The bundled sample: made here from images shipped inside the ultralytics wheel (never from ../shared).
.venv/bin/python scripts/make_sample.py --out data/sample
# The console's Leaflet, from the npm registry into pipeline/console/static/vendor/ (gitignored).
if command -v npm >/dev/null; then bash scripts/vendor_console_assets.sh; else echo "setup: npm missing: the console map needs scripts/vendor_console_assets.sh"; fi
echo "setup: done"
