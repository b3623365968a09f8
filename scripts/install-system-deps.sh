#!/usr/bin/env bash
# System packages that some tests need. Idempotent; a no-op when everything is present.
set -euo pipefail
need=()
# Filled in by later capabilities (PostgreSQL, Chromium).
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
