#!/usr/bin/env bash
# Developer install: editable dtd into the virtualenv given by $VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-/tmp/devenv}
"$VENV/bin/pip" install -q --no-build-isolation -e . -Cbuild-dir=build/dev
