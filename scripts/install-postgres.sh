#!/usr/bin/env bash
# PostgreSQL server binaries for the storage tests (tests/storages/postgres.py starts its own
# throwaway cluster from them; no system service is used). Idempotent: installs only when no
# /usr/lib/postgresql/*/bin has both initdb and pg_ctl.
set -euo pipefail

have_postgres() {
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ]; then
      echo "$bin"
      return 0
    fi
  done
  return 1
}

if bin=$(have_postgres); then
  echo "install-postgres: found $bin; nothing to do"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
echo "install-postgres: installing postgresql from Debian's packages"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql

if ! bin=$(have_postgres); then
  echo "install-postgres: postgresql installed but no initdb/pg_ctl under /usr/lib/postgresql/*/bin" >&2
  exit 1
fi
echo "install-postgres: installed $bin"
