#!/usr/bin/env bash
# Prepares the envtest binary assets (kube-apiserver and kubectl built from source, Debian's
# etcd) in bin/envtest-<version>/ and prints that directory, for KUBEBUILDER_ASSETS.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"${LK_ROOT}/hack/build-kube.sh" kube-apiserver kubectl >&2
etcd_bin="$(command -v etcd || true)"
[ -n "${etcd_bin}" ] || die "etcd not found: run hack/install-deps.sh (Debian etcd-server)"

mkdir -p "${ENVTEST_ASSETS}"
ln -sf "${KUBE_BIN}/kube-apiserver" "${ENVTEST_ASSETS}/kube-apiserver"
ln -sf "${KUBE_BIN}/kubectl" "${ENVTEST_ASSETS}/kubectl"
ln -sf "${etcd_bin}" "${ENVTEST_ASSETS}/etcd"
echo "${ENVTEST_ASSETS}"
