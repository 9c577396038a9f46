// Package framework starts the real parts integration tests run against: a kube-apiserver and
// etcd through envtest (binaries built from source by hack/), with layerkeeper's CRDs installed.
package framework
