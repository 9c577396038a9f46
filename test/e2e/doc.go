// Package e2e tests layerkeeper end to end on a real single-node Kubernetes cluster
// (test/cluster): real pods on containerd started by a real kubelet, the real Deployment
// controller, and the kubelet's own writable-layer figures as an independent oracle.
//
// TestMain brings the cluster up once in _output/e2e and tears it down at the end; with
// LAYERKEEPER_E2E_KUBECONFIG set to the kubeconfig of a cluster started by hack/cluster.sh it
// uses that cluster instead and leaves it running (so does LAYERKEEPER_E2E_KEEP=1 for the one
// it started). Tests skip without root or the built binaries, or fail in strict mode
// (LAYERKEEPER_TEST_STRICT=1, as `make test` runs them); -short skips them all.
package e2e
