#!/usr/bin/env bash
# Install hullguard into ./.venv and scan the bundled demo image. After the install nothing here
# touches the network: the image and the advisory snapshot ship in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check .
echo "+ hullguard image demo/hullguard-demo.tar" >&2
exec .venv/bin/hullguard image demo/hullguard-demo.tar "$@"
