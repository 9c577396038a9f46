package workloadstatus

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// Condition is the kind-neutral form of our condition on a workload.
type Condition struct {
	Status             corev1.ConditionStatus
	Reason, Message    string
	LastTransitionTime metav1.Time
	// LastUpdateTime is when the reason or message last changed (Deployments only).
	LastUpdateTime metav1.Time
}

// Kind adapts one workload kind: how to find its pods and read and write our condition among
// the conditions its own controller owns.
type Kind struct {
	Name     string
	New      func() client.Object
	NewList  func() client.ObjectList
	Selector func(client.Object) *metav1.LabelSelector
	// Owns reports whether the workload controls the pod (directly, or through a ReplicaSet).
	Owns func(ctx context.Context, c client.Reader, w client.Object, pod *corev1.Pod) bool
	// Get returns our condition, if present.
	Get func(client.Object) (Condition, bool)
	// Set writes our condition (adding it beside the others).
	Set func(client.Object, Condition)
	// Remove deletes our condition; it reports whether there was one.
	Remove func(client.Object) bool
}

const condType = v1alpha1.ConditionWritableLayerWithinLimits

func controlledBy(pod *corev1.Pod, w client.Object) bool {
	ref := metav1.GetControllerOf(pod)
	return ref != nil && ref.UID == w.GetUID()
}

// Kinds are the workloads that carry the condition.
var Kinds = []Kind{deploymentKind, statefulSetKind, daemonSetKind}

var deploymentKind = Kind{
	Name:     "Deployment",
	New:      func() client.Object { return &appsv1.Deployment{} },
	NewList:  func() client.ObjectList { return &appsv1.DeploymentList{} },
	Selector: func(o client.Object) *metav1.LabelSelector { return o.(*appsv1.Deployment).Spec.Selector },
	Owns: func(ctx context.Context, c client.Reader, w client.Object, pod *corev1.Pod) bool {
		ref := metav1.GetControllerOf(pod)
		if ref == nil || ref.Kind != "ReplicaSet" {
			return false
		}
		rs := &appsv1.ReplicaSet{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}, rs); err != nil || rs.UID != ref.UID {
			return false
		}
		rsRef := metav1.GetControllerOf(rs)
		return rsRef != nil && rsRef.UID == w.GetUID()
	},
	Get: func(o client.Object) (Condition, bool) {
		for _, c := range o.(*appsv1.Deployment).Status.Conditions {
			if string(c.Type) == condType {
				return Condition{Status: c.Status, Reason: c.Reason, Message: c.Message,
					LastTransitionTime: c.LastTransitionTime, LastUpdateTime: c.LastUpdateTime}, true
			}
		}
		return Condition{}, false
	},
	Set: func(o client.Object, c Condition) {
		d := o.(*appsv1.Deployment)
		nc := appsv1.DeploymentCondition{Type: condType, Status: c.Status, Reason: c.Reason, Message: c.Message,
			LastTransitionTime: c.LastTransitionTime, LastUpdateTime: c.LastUpdateTime}
		for i := range d.Status.Conditions {
			if string(d.Status.Conditions[i].Type) == condType {
				d.Status.Conditions[i] = nc
				return
			}
		}
		d.Status.Conditions = append(d.Status.Conditions, nc)
	},
	Remove: func(o client.Object) bool {
		d := o.(*appsv1.Deployment)
		for i := range d.Status.Conditions {
			if string(d.Status.Conditions[i].Type) == condType {
				d.Status.Conditions = append(d.Status.Conditions[:i], d.Status.Conditions[i+1:]...)
				return true
			}
		}
		return false
	},
}

var statefulSetKind = Kind{
	Name:     "StatefulSet",
	New:      func() client.Object { return &appsv1.StatefulSet{} },
	NewList:  func() client.ObjectList { return &appsv1.StatefulSetList{} },
	Selector: func(o client.Object) *metav1.LabelSelector { return o.(*appsv1.StatefulSet).Spec.Selector },
	Owns: func(_ context.Context, _ client.Reader, w client.Object, pod *corev1.Pod) bool {
		return controlledBy(pod, w)
	},
	Get: func(o client.Object) (Condition, bool) {
		for _, c := range o.(*appsv1.StatefulSet).Status.Conditions {
			if string(c.Type) == condType {
				return Condition{Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime}, true
			}
		}
		return Condition{}, false
	},
	Set: func(o client.Object, c Condition) {
		s := o.(*appsv1.StatefulSet)
		nc := appsv1.StatefulSetCondition{Type: condType, Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime}
		for i := range s.Status.Conditions {
			if string(s.Status.Conditions[i].Type) == condType {
				s.Status.Conditions[i] = nc
				return
			}
		}
		s.Status.Conditions = append(s.Status.Conditions, nc)
	},
	Remove: func(o client.Object) bool {
		s := o.(*appsv1.StatefulSet)
		for i := range s.Status.Conditions {
			if string(s.Status.Conditions[i].Type) == condType {
				s.Status.Conditions = append(s.Status.Conditions[:i], s.Status.Conditions[i+1:]...)
				return true
			}
		}
		return false
	},
}

var daemonSetKind = Kind{
	Name:     "DaemonSet",
	New:      func() client.Object { return &appsv1.DaemonSet{} },
	NewList:  func() client.ObjectList { return &appsv1.DaemonSetList{} },
	Selector: func(o client.Object) *metav1.LabelSelector { return o.(*appsv1.DaemonSet).Spec.Selector },
	Owns: func(_ context.Context, _ client.Reader, w client.Object, pod *corev1.Pod) bool {
		return controlledBy(pod, w)
	},
	Get: func(o client.Object) (Condition, bool) {
		for _, c := range o.(*appsv1.DaemonSet).Status.Conditions {
			if string(c.Type) == condType {
				return Condition{Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime}, true
			}
		}
		return Condition{}, false
	},
	Set: func(o client.Object, c Condition) {
		s := o.(*appsv1.DaemonSet)
		nc := appsv1.DaemonSetCondition{Type: condType, Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime}
		for i := range s.Status.Conditions {
			if string(s.Status.Conditions[i].Type) == condType {
				s.Status.Conditions[i] = nc
				return
			}
		}
		s.Status.Conditions = append(s.Status.Conditions, nc)
	},
	Remove: func(o client.Object) bool {
		s := o.(*appsv1.DaemonSet)
		for i := range s.Status.Conditions {
			if string(s.Status.Conditions[i].Type) == condType {
				s.Status.Conditions = append(s.Status.Conditions[:i], s.Status.Conditions[i+1:]...)
				return true
			}
		}
		return false
	},
}
