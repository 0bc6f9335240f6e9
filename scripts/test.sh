#!/usr/bin/env bash
# Installs everything the test suite needs (Python packages, Debian chromium for browser tests),
# then runs ruff, mypy and the whole pytest suite. Used as-is by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

python3 -m ruff check dashboard tests benchmarks
python3 -m mypy dashboard
python3 -m pytest -q "$@"
