#!/usr/bin/env bash
# Builds Kubernetes components (kube-apiserver, kubectl, kubelet, ...) from the Go module proxy
# through the wrapper module in hack/tools/kubernetes, and caches them in bin/ by version.
# Usage: hack/build-kube.sh [component ...]   (default: kube-apiserver kubectl)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kube-apiserver kubectl)

minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
ldflags+=" -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION}"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=${minor}"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION}"
ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=1"
ldflags+=" -X k8s.io/client-go/pkg/version.gitMinor=${minor}"

mkdir -p "${KUBE_BIN}"
for c in "${components[@]}"; do
  out="${KUBE_BIN}/${c}"
  if [ -x "${out}" ]; then
    continue
  fi
  log "building ${c} ${KUBE_VERSION} from the module proxy (cached afterwards in ${out#${LK_ROOT}/})"
  start=$(date +%s)
  (cd "${LK_ROOT}/hack/tools/kubernetes" &&
    CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "${ldflags}" -o "${out}.tmp" "k8s.io/kubernetes/cmd/${c}")
  mv "${out}.tmp" "${out}"
  log "built ${c} in $(( $(date +%s) - start ))s"
done
