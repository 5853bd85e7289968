# Shared by scripts/demo and scripts/test: a virtualenv in .venv with warming installed
# (with the extras named in WARMING_EXTRAS, e.g. "[test]").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".${WARMING_EXTRAS:-}"
export PATH="$PWD/.venv/bin:$PATH"
