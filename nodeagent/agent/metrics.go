package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/nodeagent/measure"
)

var (
	containerBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "layerkeeper_container_writable_layer_bytes",
		Help: "Allocated bytes of a container's writable layer (as du counts them).",
	}, []string{"namespace", "pod", "container", "runtime"})
	containerInodes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "layerkeeper_container_writable_layer_inodes",
		Help: "Entries in a container's writable layer.",
	}, []string{"namespace", "pod", "container", "runtime"})
	hotPathBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "layerkeeper_hot_path_bytes",
		Help: "Allocated bytes below a container's largest directories (top 3 per container).",
	}, []string{"namespace", "pod", "container", "path"})
	scanSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "layerkeeper_scan_duration_seconds",
		Help:    "Duration of one measuring pass over the node.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
	})
	fsAvailable = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "layerkeeper_node_filesystem_available_bytes",
		Help: "Free bytes of a node filesystem holding writable layers.",
	}, []string{"path"})
	fsCapacity = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "layerkeeper_node_filesystem_capacity_bytes",
		Help: "Size of a node filesystem holding writable layers (the base of the kubelet's percentage eviction thresholds).",
	}, []string{"path"})
	reportWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "layerkeeper_report_writes_total",
		Help: "NodeLayerReport writes, by reason (first, heartbeat, containers, bytes, filesystems, kubelet, condition).",
	}, []string{"reason"})
)

func init() {
	metrics.Registry.MustRegister(containerBytes, containerInodes, hotPathBytes, scanSeconds, fsAvailable, fsCapacity, reportWrites)
}

// recordMetrics replaces the per-container series with this pass's (so containers that went
// away lose theirs).
func recordMetrics(res measure.Result, st v1alpha1.NodeLayerReportStatus) {
	scanSeconds.Observe(res.Duration.Seconds())
	containerBytes.Reset()
	containerInodes.Reset()
	hotPathBytes.Reset()
	fsAvailable.Reset()
	fsCapacity.Reset()
	for _, c := range st.Containers {
		containerBytes.WithLabelValues(c.Namespace, c.Pod, c.Container, string(c.Runtime)).Set(float64(c.Bytes))
		containerInodes.WithLabelValues(c.Namespace, c.Pod, c.Container, string(c.Runtime)).Set(float64(c.Inodes))
		for i, h := range c.HotPaths {
			if i == 3 {
				break
			}
			hotPathBytes.WithLabelValues(c.Namespace, c.Pod, c.Container, h.Path).Set(float64(h.Bytes))
		}
	}
	for _, f := range st.Filesystems {
		fsAvailable.WithLabelValues(f.Path).Set(float64(f.AvailableBytes))
		fsCapacity.WithLabelValues(f.Path).Set(float64(f.CapacityBytes))
	}
}
