#!/usr/bin/env bash
# Runs the test suite with the wall clock moved ahead by libfaketime (the PyPI package's build;
# Debian's 0.9.10 breaks Python's sleeps), to show that no test depends on the day it runs.
# The monotonic clock is left alone, so timeouts and pacing behave as usual.
#   bash scripts/timeshift.sh +40d              # the whole suite, 40 days from now
#   bash scripts/timeshift.sh +400d -m "not peers"
set -euo pipefail
cd "$(dirname "$0")/.."
offset=${1:?usage: scripts/timeshift.sh +40d [pytest args]}
shift
bash scripts/setup.sh
bash scripts/postgres.sh
lib=$(.venv/bin/python -c 'import libfaketime, pathlib
print(pathlib.Path(libfaketime.__file__).parent / "vendor/libfaketime/src/libfaketime.so.1")')
export LD_PRELOAD=$lib FAKETIME=$offset FAKETIME_DONT_FAKE_MONOTONIC=1 CI="${CI:-true}"
echo "timeshift: the clock reads $(date -u '+%Y-%m-%d %H:%M UTC') (real time $offset)"
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
