#!/usr/bin/env bash
# make bench: every benchmark against its baseline, in one run, with the figures printed as
# markdown for docs/benchmarks.md. Never part of `make test` (no timing is ever asserted).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${LK_ROOT}"

echo "# layerkeeper benchmarks — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, kernel $(uname -r), $(go version | awk '{print $3}')"

echo
echo "## Writable-layer scan (nodeagent/scanner) vs du"
"${LK_ROOT}/hack/bench-scan.sh"

echo
echo "## Policy evaluation over a simulated cluster (controllers/evaluation)"
echo
echo '5,000 node reports x 30 containers (150k containers), 500 policies; one full pass:'
echo '```'
go test ./controllers/evaluation/ -run '^$' -bench BenchmarkEvaluateCluster -benchmem -benchtime 5x -count 3 | grep -E '^Benchmark|^ok'
echo '```'

echo
echo "## Controller API writes in steady state (envtest, real kube-apiserver)"
echo
echo '200 node reports, 2,000 pods (each owned by a Deployment through a ReplicaSet), one Audit policy;'
echo 'after convergence every report is rewritten 3 times with the same figures and a new scan time:'
echo '```'
LAYERKEEPER_STEADY_NODES=200 LAYERKEEPER_STEADY_PODS_PER_NODE=10 KUBEBUILDER_ASSETS="$("${LK_ROOT}/hack/envtest-assets.sh")" \
  go test ./test/integration/audit/ -run TestSteadyStateMakesNoWrites -count=1 -v -timeout 30m | grep -E 'created|steady state|^(ok|FAIL|---)'
echo '```'

echo
echo "## Offload to S3 (nodeagent/offload) vs Debian's awscli, same files, same MinIO, same run"
echo
echo 'Executor: conditional PUT (never overwrites) + HeadObject verification per file, files kept;'
echo 'awscli: `aws s3 cp --recursive` (10 requests in flight by default):'
echo '```'
LAYERKEEPER_MINIO="$("${LK_ROOT}/hack/build-tool.sh" minio)" \
  go test ./nodeagent/offload/ -run '^$' -bench BenchmarkOffloadVsAWSCLI -benchtime 1x -count 1 -timeout 30m | grep -E '^Benchmark|^ok'
echo '```'
