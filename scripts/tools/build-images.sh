#!/usr/bin/env bash
# Build the images tests/deploy runs, with podman (scripts/tools/install-podman.sh), without any registry:
#   localhost/see-base:bookworm            Debian bookworm minbase + python3, python3-venv, ca-certificates
#                                          (mmdebstrap, then podman import); made once, reused by tag
#   localhost/salt-event-exporter:<ver>    the repository's Dockerfile, BASE=the base above, from the wheel
#                                          `uv build` makes
#   localhost/see-salt-master:<salt ver>   tests/deploy/images/salt-master/Containerfile, same base
# Usage: build-images.sh [exporter] [salt-master]   (both when none is named). SALT_VERSION defaults to 3008.4.
# REBUILD=1 rebuilds the exporter image even when its tag exists (from the current sources; podman's layer
# cache keeps that quick); the base and the salt-master image are pinned, so their tags are enough.
# pip inside a build reaches the package index the host's pip uses (index-url from `pip config`, PIP_INDEX_URL
# wins) through a pip.conf and the host's CA bundle, both mounted read-only for the build only: neither is
# copied into an image. Prints the built image names, one a line; progress goes to stderr.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BASE_TAG="${BASE_TAG:-localhost/see-base:bookworm}"
SALT_VERSION="${SALT_VERSION:-3008.4}"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/exporter/__init__.py")"
[ -n "$VERSION" ] || { echo "no __version__ in exporter/__init__.py" >&2; exit 1; }
EXPORTER_TAG="localhost/salt-event-exporter:$VERSION"
MASTER_TAG="localhost/see-salt-master:$SALT_VERSION"
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(exporter salt-master)

bash "$ROOT/scripts/tools/install-podman.sh"
have() { podman image exists "$1"; }

if ! have "$BASE_TAG"; then
  echo "== base image $BASE_TAG (mmdebstrap)" >&2
  tar="$(mktemp --suffix=.tar)"
  trap 'rm -f "$tar"' EXIT
  mmdebstrap --quiet --mode=root --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >&2
  podman import --change 'CMD ["/bin/bash"]' "$tar" "$BASE_TAG" >/dev/null
  rm -f "$tar"
fi

# The host's index settings, for the duration of a build only.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
index="${PIP_INDEX_URL:-$(pip3 config get global.index-url 2>/dev/null || true)}"
{
  echo "[global]"
  [ -n "$index" ] && echo "index-url = $index"
  echo "cert = /etc/ssl/certs/ca-certificates.crt"
  echo "timeout = 120"
} >"$work/pip.conf"
ca=/etc/ssl/certs/ca-certificates.crt
build=(podman build --pull=never --layers --build-arg "BASE=$BASE_TAG"
  -v "$ca:/etc/ssl/certs/ca-certificates.crt:ro" -v "$work/pip.conf:/etc/pip.conf:ro")

for target in "${targets[@]}"; do
  case "$target" in
    exporter)
      if [ "${REBUILD:-0}" = 1 ] || ! have "$EXPORTER_TAG"; then
        echo "== $EXPORTER_TAG" >&2
        (cd "$ROOT" && uv build --quiet --wheel -o dist) >&2
        "${build[@]}" --build-arg "VERSION=$VERSION" -t "$EXPORTER_TAG" -f "$ROOT/Dockerfile" "$ROOT" >&2
      fi
      echo "$EXPORTER_TAG"
      ;;
    salt-master)
      if ! have "$MASTER_TAG"; then
        echo "== $MASTER_TAG" >&2
        dir="$ROOT/tests/deploy/images/salt-master"
        "${build[@]}" --build-arg "SALT_VERSION=$SALT_VERSION" -t "$MASTER_TAG" -f "$dir/Containerfile" "$dir" >&2
      fi
      echo "$MASTER_TAG"
      ;;
    *) echo "build-images.sh: unknown image $target (exporter, salt-master)" >&2; exit 2 ;;
  esac
done
