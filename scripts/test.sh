#!/usr/bin/env bash
# Installs everything the test suite needs (Python packages, Debian chromium for browser tests),
# then runs ruff, mypy and the whole pytest suite. Used as-is by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

# Debian chromium for the browser tests, and an emoji font so screenshots show what users see.
if [ ! -x /usr/bin/chromium ] || [ ! -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
fi

# Debian PostgreSQL server binaries for the shared-store tests (tests/test_team_postgres.py starts its own cluster).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

python3 -m ruff check dashboard tests benchmarks
python3 -m mypy dashboard
# Tests that need no browser run on two workers (pytest-xdist: ~3.5 min instead of ~7); the browser tests, each of
# which starts a dashboard server and chromium, one at a time. Exit 5 ("no tests collected") is not a failure: a
# selection given as arguments may hold only one kind.
run_pytest() { python3 -m pytest -q "$@" || { rc=$?; [ "$rc" = 5 ] || exit "$rc"; }; }
run_pytest -n 2 -m "not browser" "$@"
run_pytest -m browser "$@"
