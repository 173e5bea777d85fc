#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine (no GPU needed) to run webgpu-dlrm:
#  - Mesa's lavapipe Vulkan driver from bookworm-backports (Mesa 25): Deno's
#    WebGPU and Node's Dawn both run on it (Dawn rejects bookworm's Mesa 22);
#  - Chromium, whose SwiftShader Vulkan driver the Node tests use and whose
#    browser runs the demo;
#  - the npm dependencies (npm ci), when node_modules is missing or stale.
# Installs Debian packages only when missing (needs root or sudo for that).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
if ! dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q bpo; then need+=(mesa); fi
if [ ! -e /usr/lib/chromium/vk_swiftshader_icd.json ]; then need+=(chromium); fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else echo "setup: installing ${need[*]} needs root (or sudo)" >&2; exit 1; fi
  fi
  if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q -t bookworm-backports mesa-vulkan-drivers
  $SUDO apt-get install -y -q chromium
fi

# npm ci when node_modules is missing or older than package-lock.json.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
