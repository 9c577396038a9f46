package builders

import (
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// LayerPolicyWrapper builds a LayerPolicy.
type LayerPolicyWrapper struct{ v1alpha1.LayerPolicy }

// MakeLayerPolicy starts a policy selecting every pod of its namespace.
func MakeLayerPolicy(name, namespace string) *LayerPolicyWrapper {
	return &LayerPolicyWrapper{v1alpha1.LayerPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       v1alpha1.LayerPolicySpec{Selector: metav1.LabelSelector{}},
	}}
}

// Obj returns the built policy.
func (w *LayerPolicyWrapper) Obj() *v1alpha1.LayerPolicy { return w.LayerPolicy.DeepCopy() }

// MatchLabels sets the selector's matchLabels.
func (w *LayerPolicyWrapper) MatchLabels(kv ...string) *LayerPolicyWrapper {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	w.Spec.Selector = metav1.LabelSelector{MatchLabels: m}
	return w
}

// Containers restricts the policy to the named containers.
func (w *LayerPolicyWrapper) Containers(names ...string) *LayerPolicyWrapper {
	w.Spec.Containers = names
	return w
}

// Mode sets spec.mode.
func (w *LayerPolicyWrapper) Mode(m v1alpha1.PolicyMode) *LayerPolicyWrapper {
	w.Spec.Mode = m
	return w
}

func quantity(s string) *resource.Quantity {
	if s == "" {
		return nil
	}
	q := resource.MustParse(s)
	return &q
}

// Thresholds sets warn, offload and restart; an empty string leaves one unset.
func (w *LayerPolicyWrapper) Thresholds(warn, offload, restart string) *LayerPolicyWrapper {
	w.Spec.Thresholds.Warn = quantity(warn)
	w.Spec.Thresholds.Offload = quantity(offload)
	w.Spec.Thresholds.Restart = quantity(restart)
	return w
}

// LeadTime sets spec.thresholds.leadTime.
func (w *LayerPolicyWrapper) LeadTime(d time.Duration) *LayerPolicyWrapper {
	w.Spec.Thresholds.LeadTime = &metav1.Duration{Duration: d}
	return w
}

// NodePressure sets spec.nodePressure.minAvailablePercent.
func (w *LayerPolicyWrapper) NodePressure(minAvailablePercent int32) *LayerPolicyWrapper {
	w.Spec.NodePressure = &v1alpha1.NodePressure{MinAvailablePercent: minAvailablePercent}
	return w
}

// HotPath adds a hot path with include globs.
func (w *LayerPolicyWrapper) HotPath(path string, include ...string) *LayerPolicyWrapper {
	w.Spec.HotPaths = append(w.Spec.HotPaths, v1alpha1.HotPath{Path: path, Include: include})
	return w
}

// MinAge sets minAge on the last hot path added.
func (w *LayerPolicyWrapper) MinAge(d time.Duration) *LayerPolicyWrapper {
	w.Spec.HotPaths[len(w.Spec.HotPaths)-1].MinAge = &metav1.Duration{Duration: d}
	return w
}

// DefaultPrefix is the CRD's default for spec.offload.s3.prefix.
const DefaultPrefix = "{{.Namespace}}/{{.Owner}}/{{.Pod}}/{{.Container}}"

// S3 sets spec.offload.s3 with a bucket and an endpoint (path-style when an endpoint is set).
func (w *LayerPolicyWrapper) S3(bucket, endpoint string) *LayerPolicyWrapper {
	if w.Spec.Offload == nil {
		w.Spec.Offload = &v1alpha1.Offload{}
	}
	w.Spec.Offload.S3 = &v1alpha1.S3Target{Bucket: bucket, Endpoint: endpoint, ForcePathStyle: endpoint != "",
		Prefix: DefaultPrefix}
	return w
}

// CredentialsSecret sets spec.offload.s3.credentialsSecretRef.
func (w *LayerPolicyWrapper) CredentialsSecret(name string) *LayerPolicyWrapper {
	w.Spec.Offload.S3.CredentialsSecretRef = &v1alpha1.SecretReference{Name: name}
	return w
}

// Remediation sets the action, cooldown and maxConcurrent.
func (w *LayerPolicyWrapper) Remediation(action v1alpha1.RemediationAction, cooldown time.Duration, maxConcurrent int32) *LayerPolicyWrapper {
	w.Spec.Remediation.Action = action
	w.Spec.Remediation.Cooldown = &metav1.Duration{Duration: cooldown}
	w.Spec.Remediation.MaxConcurrent = maxConcurrent
	return w
}

// OffloadBeforeRestart sets spec.remediation.offloadBeforeRestart.
func (w *LayerPolicyWrapper) OffloadBeforeRestart(b bool) *LayerPolicyWrapper {
	w.Spec.Remediation.OffloadBeforeRestart = ptr.To(b)
	return w
}
