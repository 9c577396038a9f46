#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use (idempotent: only what is missing).
# Needs root. Usage: hack/install-deps.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

packages=(
  etcd-server                  # etcd for envtest and the local cluster
  containerd runc              # the container runtime the real-engine tests drive through CRI
  docker.io                    # dockerd (overlay2) for the Docker layout tests
  podman                       # containers/storage, the layout CRI-O uses
  containernetworking-plugins  # CNI loopback for the local kubelet
  awscli                       # an independent S3 client for checks and the offload benchmark
  iproute2 psmisc e2fsprogs attr
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q "install ok installed" || missing+=("${p}")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
[ "$(id -u)" = 0 ] || die "installing ${missing[*]} needs root"
log "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
