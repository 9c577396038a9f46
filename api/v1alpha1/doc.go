// Package v1alpha1 holds the layerkeeper.dev/v1alpha1 API: LayerPolicy (what a workload's
// writable layer may grow to and what to do about it), NodeLayerReport (what the node agent
// measured) and LayerOffload (one order to ship a container's hot paths to S3).
//
// +kubebuilder:object:generate=true
// +groupName=layerkeeper.dev
package v1alpha1
