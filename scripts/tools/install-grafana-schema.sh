#!/usr/bin/env bash
# Idempotent: Grafana's published dashboard types (@grafana/schema) and the TypeScript compiler, pinned,
# in a cache directory, for type-checking the dashboards (tests/grafana). Prints the directory.
set -euo pipefail
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/salt-event-exporter/grafana-schema"
SCHEMA_VERSION=13.2.3
TS_VERSION=5.9.3
if [ ! -x "$DIR/node_modules/.bin/tsc" ] || [ ! -f "$DIR/node_modules/@grafana/schema/package.json" ] \
   || ! grep -q "\"version\": \"$SCHEMA_VERSION\"" "$DIR/node_modules/@grafana/schema/package.json"; then
  mkdir -p "$DIR"
  cd "$DIR"
  [ -f package.json ] || echo '{"name": "grafana-schema-check", "private": true}' > package.json
  npm install --silent --no-audit --no-fund --loglevel=error "@grafana/schema@$SCHEMA_VERSION" "typescript@$TS_VERSION" >&2
fi
echo "$DIR"
