package layerpolicy

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
)

// Problem is why a policy is not Ready.
type Problem struct{ Reason, Message string }

// Validate checks what CEL cannot. secret is the credentials Secret (nil when not set or not
// found); nodes are the kubelet eviction thresholds of the nodes running the selected pods
// (evaluation.ValidateNodePressure). It returns nil for a usable policy.
func Validate(p *v1alpha1.LayerPolicy, secret *corev1.Secret, nodes []evaluation.NodeKubelet) *Problem {
	if _, err := metav1.LabelSelectorAsSelector(&p.Spec.Selector); err != nil {
		return &Problem{v1alpha1.ReasonInvalidSelector, fmt.Sprintf("spec.selector: %v", err)}
	}
	if o := p.Spec.Offload; o != nil && o.S3 != nil {
		if err := ValidatePrefix(o.S3.Prefix); err != nil {
			return &Problem{v1alpha1.ReasonInvalidPrefixTemplate, err.Error()}
		}
		if ref := o.S3.CredentialsSecretRef; ref != nil {
			if secret == nil {
				return &Problem{v1alpha1.ReasonCredentialsSecretNotFound,
					fmt.Sprintf("spec.offload.s3.credentialsSecretRef: Secret %s/%s not found", p.Namespace, ref.Name)}
			}
			for _, k := range []string{v1alpha1.CredentialsKeyAccessKeyID, v1alpha1.CredentialsKeySecretAccessKey} {
				if len(secret.Data[k]) == 0 {
					return &Problem{v1alpha1.ReasonCredentialsSecretNotFound,
						fmt.Sprintf("spec.offload.s3.credentialsSecretRef: Secret %s/%s has no key %s", p.Namespace, ref.Name, k)}
				}
			}
		}
	}
	if err := evaluation.ValidateNodePressure(p, nodes); err != nil {
		return &Problem{v1alpha1.ReasonInvalidNodePressure, err.Error()}
	}
	return nil
}

// credentialsSecret reads the policy's credentials Secret with a reader that does not cache
// Secrets (the controller may only get the Secrets policies name).
func credentialsSecret(ctx context.Context, r client.Reader, p *v1alpha1.LayerPolicy) (*corev1.Secret, error) {
	if p.Spec.Offload == nil || p.Spec.Offload.S3 == nil || p.Spec.Offload.S3.CredentialsSecretRef == nil {
		return nil, nil
	}
	s := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: p.Spec.Offload.S3.CredentialsSecretRef.Name}, s)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}
