// Package workloadstatus sets the WritableLayerWithinLimits condition and the layerkeeper.dev
// annotations on the Deployments, StatefulSets and DaemonSets whose pods a LayerPolicy covers,
// beside the conditions their own controllers own, and removes them when no policy covers the
// workload any more.
package workloadstatus
