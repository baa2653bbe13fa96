#!/usr/bin/env bash
# Run the test suite on a fresh machine (Debian/Ubuntu or any Linux with python3 >= 3.11).
# Installs what the tests need: a virtualenv with the package and its test extra, LibreOffice
# (Debian's libreoffice-calc, for the workbook checks) and a throw-away PostgreSQL server on
# 127.0.0.1 for the shared-store tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "test.sh: $* missing and not root: install it (apt-get install -y $*) for the full suite" >&2
        return 0
    fi
    if [ -z "${APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null
}

if ! command -v soffice >/dev/null 2>&1; then
    echo "test.sh: installing LibreOffice (libreoffice-calc) for the workbook checks" >&2
    apt_install libreoffice-calc python3-uno
elif ! /usr/bin/python3 -c "import uno" >/dev/null 2>&1; then
    # LibreOffice's Python bridge: tests type values into templates through UNO
    apt_install python3-uno
fi
if ! command -v pdftotext >/dev/null 2>&1; then
    apt_install poppler-utils || true
fi

if [ -f scripts/start-postgres.sh ] && [ -z "${PLAN_TRACKER_TEST_PG:-}" ]; then
    eval "$(bash scripts/start-postgres.sh </dev/null || true)"
fi

exec .venv/bin/python -m pytest -q "$@"
