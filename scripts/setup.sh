#!/usr/bin/env bash
# Sets up everything ivr-rating needs on Debian 12, as root: system packages (SIP peers for
# the demo and tests, audio tools, PostgreSQL if absent) and the virtualenv in .venv.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have kamailio || need_pkgs+=(kamailio)
have sipp || need_pkgs+=(sip-tester)
have baresip || need_pkgs+=(baresip)
have espeak-ng || need_pkgs+=(espeak-ng)
have sox || need_pkgs+=(sox)
have ffmpeg || need_pkgs+=(ffmpeg)
have psql || need_pkgs+=(postgresql)
have chromium || need_pkgs+=(chromium)  # the console's browser tests (Playwright)
have systemd-analyze || need_pkgs+=(systemd)  # tests/test_deploy.py verifies the units
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || need_pkgs+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_pkgs+=(python3-venv)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing system packages (${need_pkgs[*]}); run this as root" >&2
    exit 1
  fi
  echo "setup: installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.ivr-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
