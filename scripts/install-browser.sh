#!/usr/bin/env bash
# Debian's Chromium (and ChromeDriver) for the dashboard browser test and for PNG export with
# kaleido. Idempotent: installs only what is missing, and never downloads a browser build of its
# own (Playwright drives /usr/bin/chromium; do NOT run `playwright install`).
set -euo pipefail
need=()
for pkg in chromium chromium-driver; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    need+=("$pkg")
  fi
done
if [ "${#need[@]}" -eq 0 ]; then
  echo "install-browser: chromium and chromium-driver already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: apt-get not found; install Chromium yourself (needed: ${need[*]})" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
echo "install-browser: installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
/usr/bin/chromium --version 2>/dev/null || true
