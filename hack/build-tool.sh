#!/usr/bin/env bash
# Builds one Go tool from the module proxy into bin/<name>-<version>/ (once; cached by version)
# and prints the path of the binary.
# Usage: hack/build-tool.sh controller-gen|minio|helm|setup-envtest
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

name="${1:?usage: build-tool.sh NAME}"
ldflags="-s -w"
case "${name}" in
  controller-gen) pkg="sigs.k8s.io/controller-tools/cmd/controller-gen"; version="${CONTROLLER_TOOLS_VERSION}" ;;
  minio)          pkg="github.com/minio/minio"; version="${MINIO_VERSION}" ;;
  helm)           pkg="helm.sh/helm/v3/cmd/helm"; version="${HELM_VERSION}"
                  minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
                  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
                    ldflags+=" -X ${p}.k8sVersionMajor=1 -X ${p}.k8sVersionMinor=${minor}"
                  done ;;
  *) die "unknown tool ${name}" ;;
esac

dir="${LK_BIN}/${name}-${version}"
if [ ! -x "${dir}/${name}" ]; then
  log "building ${name} ${version} from the module proxy"
  start=$(date +%s)
  mkdir -p "${dir}.tmp"
  CGO_ENABLED=0 GOBIN="${dir}.tmp" GOFLAGS=-mod=mod go install -trimpath -ldflags "${ldflags}" "${pkg}@${version}" >&2
  rm -rf "${dir}"; mv "${dir}.tmp" "${dir}"
  log "built ${name} in $(( $(date +%s) - start ))s"
fi
echo "${dir}/${name}"
