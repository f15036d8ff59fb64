# Shared by scripts/demo and scripts/test: make sure uv exists and the project environment is in sync.
set -euo pipefail
export UV_PYTHON_DOWNLOADS=never
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v uv >/dev/null 2>&1; then
  # `command -v` is not enough: pyenv shims exist for versions that are not selected and fail when run.
  PY=""
  for py in python3.13 python3.12 python3.11 python3; do
    if "$py" -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1; then PY="$py"; break; fi
  done
  [ -n "$PY" ] || { echo "no Python >= 3.11 found (tried python3.13 .. python3)" >&2; exit 1; }
  echo "installing uv with $PY -m pip (user site)" >&2
  "$PY" -m pip install --quiet --user uv || "$PY" -m pip install --quiet uv
  export PATH="$("$PY" -m site --user-base)/bin:$HOME/.local/bin:$PATH"
  command -v uv >/dev/null 2>&1 || PATH="$(dirname "$(command -v "$PY")"):$PATH"
fi
uv sync --locked --quiet
