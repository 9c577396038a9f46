package workloadstatus

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Owner returns the kind and name of the workload that controls a pod: its Deployment
// (through the ReplicaSet), StatefulSet, DaemonSet, or Job; kind "Pod" and the pod's own name
// for a bare pod.
func Owner(ctx context.Context, c client.Reader, pod *corev1.Pod) (kind, name string) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return "Pod", pod.Name
	}
	if ref.Kind == "ReplicaSet" {
		rs := &appsv1.ReplicaSet{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}, rs); err == nil && rs.UID == ref.UID {
			if d := metav1.GetControllerOf(rs); d != nil && d.Kind == "Deployment" {
				return "Deployment", d.Name
			}
		}
	}
	return ref.Kind, ref.Name
}

// OwnerName returns the name of the workload of the given kind controlling the pod.
func OwnerName(ctx context.Context, c client.Reader, pod *corev1.Pod, kind string) (string, bool) {
	k, n := Owner(ctx, c, pod)
	return n, k == kind
}
