#!/usr/bin/env bash
# Install the test dependencies and run the whole suite: unit tests, and integration tests against
# real parts (a debootstrap-built Debian image, Debian's docker-registry, skopeo, umoci, PostgreSQL)
# that the suite starts itself on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "$(id -u)" = 0 ] && [ -f .ci/setup.sh ]; then
  bash .ci/setup.sh          # system packages from Debian's archive, when missing
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
exec .venv/bin/python -m pytest "$@"
