#!/usr/bin/env bash
# Runs every test against the real parts: builds (once, cached in bin/) kube-apiserver, kubectl,
# kube-controller-manager, kube-scheduler and kubelet from source (envtest and the end-to-end
# cluster of test/cluster), MinIO as the S3 server and helm for the chart tests, then
# `go test ./...` in strict mode, where a test that cannot find a part it needs fails instead of
# skipping.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${LK_ROOT}"

start=$(date +%s)
"${LK_ROOT}/hack/install-deps.sh"
KUBEBUILDER_ASSETS="$("${LK_ROOT}/hack/envtest-assets.sh")"
"${LK_ROOT}/hack/build-kube.sh" kube-controller-manager kube-scheduler kubelet
LAYERKEEPER_KUBE_BIN="${KUBE_BIN}"
LAYERKEEPER_MINIO="$("${LK_ROOT}/hack/build-tool.sh" minio)"
LAYERKEEPER_HELM="$("${LK_ROOT}/hack/build-tool.sh" helm)"
export KUBEBUILDER_ASSETS LAYERKEEPER_KUBE_BIN LAYERKEEPER_MINIO LAYERKEEPER_HELM
export LAYERKEEPER_TEST_STRICT=1
log "tools ready in $(( $(date +%s) - start ))s"

log "lint"
go vet ./...
unformatted="$(gofmt -l $(git ls-files '*.go'))"
[ -z "${unformatted}" ] || die "gofmt would change: ${unformatted}"

log "go test ./..."
# -p 1 keeps packages that start servers or mount overlays from competing for 2 cores.
go test -count=1 -p "${TEST_PARALLEL_PACKAGES:-1}" -timeout "${TEST_TIMEOUT:-40m}" ${GO_TEST_ARGS:-} ./... 2>&1 | tee "${LK_BIN}/test.log"
log "all tests passed in $(( $(date +%s) - start ))s"
