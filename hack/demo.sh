#!/usr/bin/env bash
# make demo: the whole loop on a real single-node cluster on this machine (test/cluster: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, containerd + runc, kubelet, MinIO, all
# on 127.0.0.1). Builds what it needs (cached in bin/), brings the cluster up (or reuses it),
# installs layerkeeper with its Helm chart, and runs the seed scenario with a narrated,
# timestamped view: an Airflow-like scheduler filling its writable layer, its logs shipped to S3,
# the Deployment rolled, a quiet workload left alone. The cluster stays up for poking at;
# `hack/cluster.sh down` tears it down.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${LK_ROOT}"

"${LK_ROOT}/hack/install-deps.sh"
"${LK_ROOT}/hack/build-kube.sh" kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl
LAYERKEEPER_MINIO="$("${LK_ROOT}/hack/build-tool.sh" minio)"
LAYERKEEPER_HELM="$("${LK_ROOT}/hack/build-tool.sh" helm)"
export LAYERKEEPER_MINIO LAYERKEEPER_HELM LAYERKEEPER_KUBE_BIN="${KUBE_BIN}"
exec go run ./test/cluster/cmd demo --dir "${LK_CLUSTER_DIR:-${LK_ROOT}/_output/cluster}"
