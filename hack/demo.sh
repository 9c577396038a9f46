#!/usr/bin/env bash
# make demo: brings up the local control plane and S3 server (hack/local-cluster.sh), installs
# layerkeeper's CRDs, creates the bucket and applies the airflow sample policy pointed at the
# local S3, then shows what a cluster admin sees. Leaves everything running for poking at;
# `hack/local-cluster.sh down` tears it down.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${LK_ROOT}"

step() { printf '\n\033[1m%s  %s\033[0m\n' "$(date +%H:%M:%S)" "$*"; }

SCRATCH="${LK_SCRATCH:-${LK_ROOT}/_output/local}"
if [ -s "${SCRATCH}/pids" ]; then
  step "A local setup is already up; restarting it"
  hack/local-cluster.sh down
fi
step "Starting etcd, kube-apiserver ${KUBE_VERSION} (built from source) and an S3 server on 127.0.0.1"
hack/local-cluster.sh up
# shellcheck disable=SC1091
source "${SCRATCH}/env"

step "Installing the layerkeeper CRDs"
kubectl apply --server-side -k config/crd
kubectl wait --for condition=Established --timeout=60s crd/layerpolicies.layerkeeper.dev crd/nodelayerreports.layerkeeper.dev crd/layeroffloads.layerkeeper.dev

step "Validating the install manifests (config/default) with a server-side dry run"
kubectl create namespace layerkeeper-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply --server-side --dry-run=server -k config/default | sed 's/^/  /'

step "Starting the layerkeeper controller against the local API server"
make -s build
setsid bin/layerkeeper controller --kubeconfig "${KUBECONFIG}" --metrics-bind-address 127.0.0.1:0 \
  --health-probe-bind-address 127.0.0.1:0 > "${SCRATCH}/controller.log" 2>&1 < /dev/null &
echo "controller $!" >> "${SCRATCH}/pids"

step "Creating the bucket airflow-logs in the local S3"
AWS_PAGER="" /usr/bin/aws --endpoint-url "${S3_ENDPOINT}" s3 mb s3://airflow-logs

step "Applying the airflow-scheduler sample policy, pointed at the local S3"
kubectl create namespace airflow --dry-run=client -o yaml | kubectl apply -f -
kubectl -n airflow create secret generic s3-credentials \
  --from-literal=AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID}" --from-literal=AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY}" \
  --dry-run=client -o yaml | kubectl apply -f -
sed -e "s|region: eu-west-1|region: us-east-1\n      endpoint: ${S3_ENDPOINT}\n      forcePathStyle: true|" \
  config/samples/layerkeeper_v1alpha1_layerpolicy.yaml | sed 's/\\n/\n/g' | kubectl apply -f -

step "An invalid policy is refused by the API server, naming the field"
kubectl apply -f - <<'YAML' || true
apiVersion: layerkeeper.dev/v1alpha1
kind: LayerPolicy
metadata: {name: out-of-order, namespace: airflow}
spec:
  selector: {}
  thresholds: {warn: 8Gi, offload: 4Gi}
YAML

step "The controller validates the policy (Ready) and counts the pods it selects"
kubectl -n airflow wait --for=condition=Ready --timeout=60s layerpolicy/airflow-scheduler-logs
kubectl -n airflow get layerpolicy airflow-scheduler-logs -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}'

step "A policy naming a missing credentials Secret is not Ready, and says why"
kubectl apply -f - <<'YAML'
apiVersion: layerkeeper.dev/v1alpha1
kind: LayerPolicy
metadata: {name: missing-secret, namespace: airflow}
spec:
  selector: {matchLabels: {component: worker}}
  hotPaths: [{path: /var/log/app}]
  offload: {s3: {bucket: airflow-logs, credentialsSecretRef: {name: nope}}}
YAML
for _ in $(seq 100); do
  reason=$(kubectl -n airflow get layerpolicy missing-secret -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}')
  [ -n "${reason}" ] && break; sleep 0.2
done
kubectl -n airflow get layerpolicy missing-secret -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}'

step "What a cluster admin sees"
kubectl get layerpolicies,nodelayerreports,layeroffloads -A -o wide
kubectl -n airflow get layerpolicy airflow-scheduler-logs -o yaml | sed -n '/^spec:/,$p'
kubectl explain layerpolicy.spec.thresholds | sed -n 1,30p

cat <<MSG

The local control plane and S3 server are still running.
  export KUBECONFIG=${KUBECONFIG}
  kubectl get layerpolicies -A
  AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY} /usr/bin/aws --endpoint-url ${S3_ENDPOINT} s3 ls s3://airflow-logs
Tear it all down with:
  hack/local-cluster.sh down
MSG
