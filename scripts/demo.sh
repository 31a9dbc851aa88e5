#!/usr/bin/env bash
# The main job as a demo: a whole night against real local peers. Starts Kamailio (registrar
# with digest auth, strict like a real PBX), SIPp and baresip citizens and a portal emulator on
# loopback, runs `ivr-rating night` on SQLite, prints the summary and what the portal received,
# then stops the peers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m lab.demo "$@"
