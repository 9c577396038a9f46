package builders

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/layerkeeper/layerkeeper/test/images"
)

// RestartedAtAnnotation is the pod template annotation `kubectl rollout restart` sets.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// WorkloadWrapper builds a Deployment that runs on the test cluster (test/cluster): host
// network (the cluster has no pod network), locally imported images (imagePullPolicy:
// Never), and a 2 s termination grace period, so that rolls and teardown stay quick.
type WorkloadWrapper struct{ appsv1.Deployment }

// MakeWorkload starts a one-replica Deployment selecting app=<name>, without containers.
func MakeWorkload(name, ns string) *WorkloadWrapper {
	lbls := map[string]string{"app": name}
	return &WorkloadWrapper{appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbls},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec: corev1.PodSpec{
					HostNetwork:                   true,
					TerminationGracePeriodSeconds: ptr.To[int64](2),
				},
			},
		},
	}}
}

// LogWriter adds a container running the logwriter image (an Airflow-like scheduler filling
// /opt/airflow/logs/scheduler) with the given arguments (-rate, -rotate-bytes, -for...).
func (w *WorkloadWrapper) LogWriter(container string, args ...string) *WorkloadWrapper {
	return w.container(container, images.LogWriterImage, args)
}

// Quiet adds a container running the quiet image, which never writes to its layer.
func (w *WorkloadWrapper) Quiet(container string) *WorkloadWrapper {
	return w.container(container, images.QuietImage, nil)
}

func (w *WorkloadWrapper) container(name, image string, args []string) *WorkloadWrapper {
	w.Spec.Template.Spec.Containers = append(w.Spec.Template.Spec.Containers, corev1.Container{
		Name: name, Image: image, ImagePullPolicy: corev1.PullNever, Args: args,
	})
	return w
}

// Replicas sets the replica count.
func (w *WorkloadWrapper) Replicas(n int32) *WorkloadWrapper {
	w.Spec.Replicas = ptr.To(n)
	return w
}

// Env sets an environment variable on every container added so far.
func (w *WorkloadWrapper) Env(name, value string) *WorkloadWrapper {
	for i := range w.Spec.Template.Spec.Containers {
		w.Spec.Template.Spec.Containers[i].Env = append(w.Spec.Template.Spec.Containers[i].Env, corev1.EnvVar{Name: name, Value: value})
	}
	return w
}

// EphemeralStorageLimit sets an ephemeral-storage limit (and request) on every container
// added so far; the kubelet's eviction manager enforces it.
func (w *WorkloadWrapper) EphemeralStorageLimit(q string) *WorkloadWrapper {
	qty := resource.MustParse(q)
	for i := range w.Spec.Template.Spec.Containers {
		c := &w.Spec.Template.Spec.Containers[i]
		c.Resources.Limits = corev1.ResourceList{corev1.ResourceEphemeralStorage: qty}
		c.Resources.Requests = corev1.ResourceList{corev1.ResourceEphemeralStorage: qty}
	}
	return w
}

// RestartedAt sets the pod template annotation `kubectl rollout restart` sets.
func (w *WorkloadWrapper) RestartedAt(t time.Time) *WorkloadWrapper {
	if w.Spec.Template.Annotations == nil {
		w.Spec.Template.Annotations = map[string]string{}
	}
	w.Spec.Template.Annotations[RestartedAtAnnotation] = t.Format(time.RFC3339)
	return w
}

// Obj returns the built Deployment.
func (w *WorkloadWrapper) Obj() *appsv1.Deployment { return w.Deployment.DeepCopy() }
