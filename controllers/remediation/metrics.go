package remediation

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var remediationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "layerkeeper_remediations_total",
	Help: "Remediations by action (RolloutRestart, EvictPod) and result (done, refused, skipped:<reason>).",
}, []string{"action", "result"})

func init() { metrics.Registry.MustRegister(remediationsTotal) }
