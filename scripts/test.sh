#!/usr/bin/env bash
# The test command: sets everything up, then runs lint, types and the whole test suite,
# including the end-to-end tests against real SIP peers (Kamailio, SIPp, baresip), the real
# PostgreSQL and a real HTTP portal on loopback. A missing peer fails the run, never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/postgres.sh
export CI="${CI:-true}"
# The browser tests save a screenshot of each console page here: the CI artefact.
export IVR_ARTIFACTS="${IVR_ARTIFACTS:-$PWD/artifacts/screenshots}"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -p no:cacheprovider "$@"
