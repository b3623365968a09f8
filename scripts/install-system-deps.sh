#!/usr/bin/env bash
# System packages that some tests need. Idempotent; a no-op when everything is present.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/install-postgres.sh"   # PostgreSQL server for the multi-worker storage tests
bash "$here/install-browser.sh"    # Debian's Chromium for the optuna-dashboard browser test
