#!/usr/bin/env bash
# A real single-node Kubernetes cluster on 127.0.0.1 (test/cluster): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd + runc, a kubelet and MinIO, in a scratch
# directory, with the layerkeeper, logwriter and quiet images built here and imported. `up`
# builds what it needs first (cached in bin/); on a cluster already up it only rebuilds and
# re-imports the images. It prints the start-up time; `down` stops everything by the PIDs it
# recorded and cleans up.
# Usage: hack/cluster.sh up|down|status|env   (scratch dir: $LK_CLUSTER_DIR, default _output/cluster)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${LK_ROOT}"

verb="${1:-}"
case "${verb}" in
  up)
    "${LK_ROOT}/hack/install-deps.sh"
    "${LK_ROOT}/hack/build-kube.sh" kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl
    LAYERKEEPER_MINIO="$("${LK_ROOT}/hack/build-tool.sh" minio)"
    export LAYERKEEPER_MINIO
    ;;
  down|status|env) ;;
  *) die "usage: $0 up|down|status|env" ;;
esac
export LAYERKEEPER_KUBE_BIN="${KUBE_BIN}"
exec go run ./test/cluster/cmd "${verb}" --dir "${LK_CLUSTER_DIR:-${LK_ROOT}/_output/cluster}"
