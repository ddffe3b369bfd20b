#!/usr/bin/env bash
# Install everything (system packages, the project with its test extras) and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -m pytest -q "$@"
