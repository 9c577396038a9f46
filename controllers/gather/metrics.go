package gather

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var evaluationSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
	Name:    "layerkeeper_evaluation_duration_seconds",
	Help:    "Time to evaluate the policies selecting one pod against its figures.",
	Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
})

func init() {
	metrics.Registry.MustRegister(evaluationSeconds)
}
