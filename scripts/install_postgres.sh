#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries for the study storage tests (the tests start a
# throwaway cluster themselves with initdb + pg_ctl; no system service is needed).
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb
