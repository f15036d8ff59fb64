#!/usr/bin/env bash
# Idempotent: a rootful podman that works on this kind of host, for tests/deploy. Debian's podman with runc
# as the OCI runtime (crun refuses hybrid cgroup hierarchies), mmdebstrap to make base images without a
# registry, and a containers.conf whose default ulimits do not exceed the hard limits root may set here.
# Prints nothing on success; apt's output goes to stderr only when something fails.
set -euo pipefail
need=()
for pair in podman:podman runc:runc mmdebstrap:mmdebstrap slirp4netns:slirp4netns uidmap:newuidmap \
  fuse-overlayfs:fuse-overlayfs iptables:iptables; do
  pkg="${pair%%:*}" bin="${pair#*:}"
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  log="$(mktemp)"
  trap 'rm -f "$log"' EXIT
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" \
      containers-storage netavark aardvark-dns catatonit; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-podman.sh: apt-get install ${need[*]} failed" >&2
    exit 1
  fi
fi
conf=/etc/containers/containers.conf
want='# written by salt-event-exporter scripts/tools/install-podman.sh
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
'
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "${want%$'\n'}" ]; then
  mkdir -p /etc/containers
  printf '%s' "$want" >"$conf"
fi
podman info >/dev/null 2>&1 || { podman info >&2; echo "install-podman.sh: podman does not work" >&2; exit 1; }
