#!/usr/bin/env bash
# Set up minewatch on a fresh Debian machine (run as root, or with sudo available).
#   bash scripts/setup.sh          runtime: .venv with the daemon's packages, the sample clip
#   bash scripts/setup.sh --dev    also test tools, Mosquitto, an RTSP server (GStreamer), training extras
# Idempotent: a second run only checks. Every step says what it does ("setup: [2/6] ...").
# Environment:
#   SETUP_APT_LOCK_WAIT_S   how long to wait for another apt/dpkg holding its lock (default 120; 0: fail at once)
#   SETUP_TORCH_INDEX       where to get a CPU-only PyTorch when the machine has no NVIDIA GPU
#                           (default https://download.pytorch.org/whl/cpu; "none": take PyPI's build)
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1
STEPS=5
[[ $DEV -eq 1 ]] && STEPS=7
STEP=0
step() { STEP=$((STEP + 1)); echo "setup: [$STEP/$STEPS] $*"; }
fail() { echo "setup: $*" >&2; exit 1; }

SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
LOCK_WAIT_S=${SETUP_APT_LOCK_WAIT_S:-120}

# The process holding dpkg's lock (unattended-upgrades on a fresh machine, another apt-get), or nothing.
dpkg_lock_holder() {
  local lock pid
  for lock in ${SETUP_DPKG_LOCKS:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock}; do
    [[ -e $lock ]] || continue
    pid=$( (command -v lslocks >/dev/null && lslocks -n -o PID,PATH 2>/dev/null | awk -v l="$lock" '$2 == l {print $1; exit}') || true)
    if [[ -n $pid ]]; then
      echo "pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80 || echo '?')) holds $lock"
      return
    fi
  done
}

apt_pkgs=()
python3 -m venv --help >/dev/null 2>&1 || apt_pkgs+=(python3-venv python3-pip)
# mosquitto_sub and mosquitto_pub: the README's way to watch the alerts arrive
dpkg -s mosquitto-clients >/dev/null 2>&1 || apt_pkgs+=(mosquitto-clients)
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
  step "system packages: apt-get install ${apt_pkgs[*]}"
  holder=$(dpkg_lock_holder)
  if [[ -n $holder ]]; then
    [[ $LOCK_WAIT_S -gt 0 ]] || fail "another package manager is running: $holder. Wait for it to finish (or stop it), then run this again."
    echo "setup:   another package manager is running: $holder; waiting for it at most ${LOCK_WAIT_S} s (SETUP_APT_LOCK_WAIT_S)"
  fi
  apt_opts=(-o "DPkg::Lock::Timeout=$LOCK_WAIT_S")
  $SUDO apt-get "${apt_opts[@]}" update -qq \
    || fail "apt-get update failed$( [[ -n $(dpkg_lock_holder) ]] && echo ": the package lock is still held after ${LOCK_WAIT_S} s ($(dpkg_lock_holder))")"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null \
    || fail "apt-get install failed$( [[ -n $(dpkg_lock_holder) ]] && echo ": the package lock is still held after ${LOCK_WAIT_S} s ($(dpkg_lock_holder))")"
else
  step "system packages: all there"
fi

# pip, quiet but for real problems; its exit status is kept (a failed install stops the setup)
pip_install() {
  set +e
  .venv/bin/python -m pip install -q "$@" 2>&1 | grep -v -e '^WARNING: Location' -e 'BuildBackendWarning' -e '^ *!!'
  local rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}
step "Python environment: .venv (pip, then minewatch's packages)"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
pip_install --upgrade pip

has_nvidia_gpu() {
  [[ -e /dev/nvidia0 ]] || (command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1) \
    || (command -v lspci >/dev/null && lspci 2>/dev/null | grep -qi 'nvidia')
}
if [[ $DEV -eq 1 ]]; then
  # The training extra pins torch/torchvision. PyPI's Linux x86_64 builds carry CUDA (about 5.5 GB in the
  # venv); without an NVIDIA GPU the CPU-only build of the same versions (about 1 GB) does the same work.
  step "training extras: PyTorch"
  torch_pin=$(sed -n 's/^ *"\(torch==[0-9.]*\)",*$/\1/p' pyproject.toml | head -1)
  vision_pin=$(sed -n 's/^ *"\(torchvision==[0-9.]*\)",*$/\1/p' pyproject.toml | head -1)
  index=${SETUP_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
  if .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
    echo "setup:   torch $(.venv/bin/python -c 'import torch; print(torch.__version__)') is installed already"
  elif has_nvidia_gpu; then
    echo "setup:   NVIDIA GPU found: $torch_pin $vision_pin with CUDA from PyPI (about 5.5 GB)"
  elif [[ $index != none ]] && .venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=8)" "$index" 2>/dev/null; then
    echo "setup:   no NVIDIA GPU: CPU-only $torch_pin $vision_pin from $index (about 1 GB instead of 5.5)"
    pip_install --index-url "$index" --extra-index-url https://pypi.org/simple "$torch_pin" "$vision_pin" \
      || fail "the CPU-only PyTorch did not install from $index (see pip's output above); SETUP_TORCH_INDEX=none takes PyPI's CUDA build"
  else
    echo "setup:   no NVIDIA GPU, but the CPU-only PyTorch index ($index) is not reachable: taking PyPI's CUDA" \
         "build of $torch_pin (about 5.5 GB; it runs on the CPU too)"
  fi
  step "minewatch with its dev, train, console and onvif extras (pip install -e '.[dev,train,console,onvif]')"
  pip_install -e ".[dev,train,console,onvif]"
else
  step "minewatch (pip install -e .)"
  pip_install -e .
fi
.venv/bin/python -c "import pipeline, av, onnxruntime, cv2, shapely, pyproj, paho.mqtt" \
  || fail "the Python packages did not install (see pip's output above)"
if [[ $DEV -eq 1 ]]; then
  echo "setup:   .venv holds $(du -sh .venv 2>/dev/null | cut -f1)"
fi

# The bundled sample: made here from images shipped inside the ultralytics wheel (never from ../shared).
step "the sample clip (data/sample/)"
.venv/bin/python scripts/make_sample.py --out data/sample
# The console's Leaflet, from the npm registry into pipeline/console/static/vendor/ (gitignored).
step "the console's map library (pipeline/console/static/vendor/)"
if command -v npm >/dev/null; then bash scripts/vendor_console_assets.sh; else echo "setup: npm missing: the console map needs scripts/vendor_console_assets.sh"; fi
if [[ $DEV -eq 1 ]]; then
  step "test data: ../shared/data"
  if [[ -d ../shared/data ]]; then
    echo "setup:   ../shared/data found: the tests on real footage and photos run"
  else
    echo "setup:   ../shared/data is absent: the tests on real footage and photos will skip (README: Tests)"
  fi
fi
echo "setup: done"
