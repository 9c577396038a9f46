#!/usr/bin/env bash
# A local control plane and S3 server on 127.0.0.1, in a scratch directory, for the demo and
# for poking at layerkeeper by hand: etcd (Debian), kube-apiserver (built from source), MinIO
# (built from source). Everything is stopped by the PIDs recorded at start.
# Usage: hack/local-cluster.sh up|down|env   (scratch dir: $LK_SCRATCH, default _output/local)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCRATCH="${LK_SCRATCH:-${LK_ROOT}/_output/local}"
PIDS="${SCRATCH}/pids"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_for() { # url seconds [curl args...]
  local url=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 10))); do
    curl -fsk "$@" "${url}" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

start_bg() { # name cmd...
  local name=$1; shift
  setsid "$@" >"${SCRATCH}/${name}.log" 2>&1 < /dev/null &
  echo "${name} $!" >> "${PIDS}"
}

up() {
  [ ! -s "${PIDS}" ] || die "already up (${PIDS}); run: $0 down"
  "${LK_ROOT}/hack/build-kube.sh" kube-apiserver kubectl
  local minio; minio="$("${LK_ROOT}/hack/build-tool.sh" minio)"
  command -v etcd >/dev/null || die "etcd not found: run hack/install-deps.sh"
  local t0; t0=$(date +%s%N)
  mkdir -p "${SCRATCH}"/{etcd,pki,minio}
  : > "${PIDS}"

  local etcd_port peer_port api_port s3_port s3_console
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port); s3_port=$(free_port); s3_console=$(free_port)
  start_bg etcd etcd --data-dir "${SCRATCH}/etcd" \
    --listen-client-urls "http://127.0.0.1:${etcd_port}" --advertise-client-urls "http://127.0.0.1:${etcd_port}" \
    --listen-peer-urls "http://127.0.0.1:${peer_port}" --initial-advertise-peer-urls "http://127.0.0.1:${peer_port}" \
    --initial-cluster "default=http://127.0.0.1:${peer_port}"
  wait_for "http://127.0.0.1:${etcd_port}/health" 30 || die "etcd did not start: $(tail -5 "${SCRATCH}/etcd.log")"

  openssl genrsa -out "${SCRATCH}/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "${SCRATCH}/pki/sa.key" -pubout -out "${SCRATCH}/pki/sa.pub" 2>/dev/null
  local token; token=$(openssl rand -hex 16)
  echo "${token},admin,admin,system:masters" > "${SCRATCH}/pki/tokens.csv"
  start_bg kube-apiserver "${KUBE_BIN}/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:${etcd_port}" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "${api_port}" \
    --endpoint-reconciler-type none --cert-dir "${SCRATCH}/pki" \
    --token-auth-file "${SCRATCH}/pki/tokens.csv" --authorization-mode Node,RBAC \
    --service-account-key-file "${SCRATCH}/pki/sa.pub" --service-account-signing-key-file "${SCRATCH}/pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc --service-cluster-ip-range 10.96.0.0/16 \
    --allow-privileged=true
  wait_for "https://127.0.0.1:${api_port}/readyz" 90 -H "Authorization: Bearer ${token}" \
    || die "kube-apiserver did not become ready: $(tail -5 "${SCRATCH}/kube-apiserver.log")"

  local s3_user=layerkeeper s3_pass; s3_pass=$(openssl rand -hex 12)
  MINIO_ROOT_USER=${s3_user} MINIO_ROOT_PASSWORD=${s3_pass} MINIO_BROWSER=off MINIO_UPDATE=off \
    start_bg minio "${minio}" server "${SCRATCH}/minio" --quiet \
      --address "127.0.0.1:${s3_port}" --console-address "127.0.0.1:${s3_console}"
  wait_for "http://127.0.0.1:${s3_port}/minio/health/ready" 60 || die "MinIO did not start: $(tail -5 "${SCRATCH}/minio.log")"

  cat > "${SCRATCH}/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:${api_port}", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: "${token}"}
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
KC
  cat > "${SCRATCH}/env" <<ENV
export KUBECONFIG=${SCRATCH}/kubeconfig
export S3_ENDPOINT=http://127.0.0.1:${s3_port}
export AWS_ACCESS_KEY_ID=${s3_user}
export AWS_SECRET_ACCESS_KEY=${s3_pass}
export AWS_DEFAULT_REGION=us-east-1
export PATH=${KUBE_BIN}:\$PATH
ENV
  log "control plane and S3 up in $(( ($(date +%s%N) - t0) / 1000000 ))ms: source ${SCRATCH#${LK_ROOT}/}/env"
}

down() {
  if [ -s "${PIDS}" ]; then
    tac "${PIDS}" | while read -r name pid; do
      if kill -0 "${pid}" 2>/dev/null; then
        kill -TERM -- "-${pid}" 2>/dev/null || kill -TERM "${pid}" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-${pid}" 2>/dev/null || true
      fi
      log "stopped ${name} (pid ${pid})"
    done
  fi
  rm -rf "${SCRATCH}"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) cat "${SCRATCH}/env" ;;
  *) die "usage: $0 up|down|env" ;;
esac
