package layerpolicy

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

var podsByState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "layerkeeper_policy_pods",
	Help: "Pods a LayerPolicy selects, by state (ok, warn, offload, restart).",
}, []string{"namespace", "policy", "state"})

func init() {
	metrics.Registry.MustRegister(podsByState)
}

func recordMetrics(p *v1alpha1.LayerPolicy, c v1alpha1.LayerPolicyStatus) {
	ok := c.MatchedPods - c.OverLimitPods
	podsByState.WithLabelValues(p.Namespace, p.Name, string(v1alpha1.StateOK)).Set(float64(ok))
	podsByState.WithLabelValues(p.Namespace, p.Name, string(v1alpha1.StateWarn)).Set(float64(c.PodsByState.Warn))
	podsByState.WithLabelValues(p.Namespace, p.Name, string(v1alpha1.StateOffload)).Set(float64(c.PodsByState.Offload))
	podsByState.WithLabelValues(p.Namespace, p.Name, string(v1alpha1.StateRestart)).Set(float64(c.PodsByState.Restart))
}

func forgetMetrics(p *v1alpha1.LayerPolicy) {
	podsByState.DeletePartialMatch(prometheus.Labels{"namespace": p.Namespace, "policy": p.Name})
}
