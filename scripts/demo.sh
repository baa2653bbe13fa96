#!/usr/bin/env bash
# The demo on a fresh machine: a virtualenv with plan-tracker, then `plan-tracker demo`
# on the built-in synthetic sample (合成示例数据). Extra arguments go to `plan-tracker demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/plan-tracker demo "${@:-demo-project}"
