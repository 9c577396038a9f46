#!/usr/bin/env bash
# Shared settings for the hack/ scripts. Source it; it changes nothing by itself.

LK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LK_BIN="${LK_BIN:-${LK_ROOT}/bin}"

# Versions of every tool the tests build. Bump here only.
KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
CONTROLLER_TOOLS_VERSION="${CONTROLLER_TOOLS_VERSION:-v0.23.0}"
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"

KUBE_BIN="${LK_BIN}/kubernetes-${KUBE_VERSION}"
ENVTEST_ASSETS="${LK_BIN}/envtest-${KUBE_VERSION}"

log() { printf '%s [hack] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
