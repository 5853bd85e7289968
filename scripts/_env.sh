# Shared by scripts/demo and scripts/test: a virtualenv in .venv with warming installed
# (with the extras named in WARMING_EXTRAS, e.g. "[test]"). Installs again only when
# pyproject.toml changes; pip's output goes to .venv/install.log, shown if it fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setting up .venv (first run only) ..." >&2
  "$PY" -m venv .venv
fi
stamp=".venv/.installed${WARMING_EXTRAS:-}"
if ! cmp -s pyproject.toml "$stamp"; then
  if ! { .venv/bin/python -m pip install -q --upgrade pip \
         && .venv/bin/python -m pip install -q -e ".${WARMING_EXTRAS:-}"; } \
       >.venv/install.log 2>&1; then
    cat .venv/install.log >&2
    echo "installing warming failed (log above, also in .venv/install.log)" >&2
    exit 1
  fi
  cp pyproject.toml "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
