# Shared by scripts/demo and scripts/test: make sure uv exists and the project environment is in sync.
set -euo pipefail
export UV_PYTHON_DOWNLOADS=never
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v uv >/dev/null 2>&1; then
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1; then PY="$py"; break; fi
  done
  echo "installing uv with $PY -m pip (user site)" >&2
  "$PY" -m pip install --quiet --user uv || "$PY" -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi
uv sync --locked --quiet
