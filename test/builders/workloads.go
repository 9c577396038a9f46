package builders

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// PodTemplate is a minimal pod template with the given labels and containers.
func PodTemplate(lbls map[string]string, containers ...string) corev1.PodTemplateSpec {
	t := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbls}}
	for _, c := range containers {
		t.Spec.Containers = append(t.Spec.Containers, corev1.Container{Name: c, Image: "example.invalid/" + c})
	}
	return t
}

// Deployment returns a Deployment selecting lbls.
func Deployment(name, ns string, lbls map[string]string, containers ...string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: PodTemplate(lbls, containers...),
		},
	}
}

// StatefulSet returns a StatefulSet selecting lbls.
func StatefulSet(name, ns string, lbls map[string]string, containers ...string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: PodTemplate(lbls, containers...),
		},
	}
}

// ReplicaSetFor returns a ReplicaSet controlled by the Deployment (what the Deployment
// controller would create).
func ReplicaSetFor(d *appsv1.Deployment, hash string) *appsv1.ReplicaSet {
	lbls := map[string]string{"pod-template-hash": hash}
	for k, v := range d.Spec.Template.Labels {
		lbls[k] = v
	}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-" + hash, Namespace: d.Namespace, Labels: lbls,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: d.Spec.Replicas,
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbls}, Spec: d.Spec.Template.Spec},
		},
	}
}

// PodFor returns a pod controlled by owner (a ReplicaSet, StatefulSet, ...), bound to node.
func PodFor(owner metav1.Object, kind string, name, node string, tmpl corev1.PodTemplateSpec) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: owner.GetNamespace(), Labels: tmpl.Labels},
		Spec:       tmpl.Spec,
	}
	p.Spec.NodeName = node
	if kind != "" {
		p.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(owner, appsv1.SchemeGroupVersion.WithKind(kind))}
	}
	return p
}

// ReportWrapper builds a NodeLayerReport.
type ReportWrapper struct{ v1alpha1.NodeLayerReport }

// MakeReport starts a report for a node scanned at t, with one filesystem of the given
// capacity and free space.
func MakeReport(node string, t time.Time, capacity, available int64) *ReportWrapper {
	mt := metav1.NewTime(t)
	return &ReportWrapper{v1alpha1.NodeLayerReport{
		ObjectMeta: metav1.ObjectMeta{Name: node},
		Status: v1alpha1.NodeLayerReportStatus{
			ScanTime:           &mt,
			Runtimes:           []v1alpha1.Runtime{v1alpha1.RuntimeContainerd},
			Filesystems:        []v1alpha1.FilesystemUsage{{Path: "/var/lib/containerd", CapacityBytes: capacity, AvailableBytes: available}},
			NodeAvailableBytes: available,
		},
	}}
}

// Container adds a running container of a pod with its size and top hot path.
func (w *ReportWrapper) Container(pod *corev1.Pod, container string, bytes int64, hotPath string) *ReportWrapper {
	c := v1alpha1.ContainerLayer{
		Runtime: v1alpha1.RuntimeContainerd, ContainerID: fmt.Sprintf("%s-%s", pod.UID, container), State: v1alpha1.ContainerRunning,
		Namespace: pod.Namespace, Pod: pod.Name, PodUID: string(pod.UID), Container: container,
		UpperDir: "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs", Bytes: bytes, ApparentBytes: bytes, Inodes: 10,
	}
	if hotPath != "" {
		c.HotPaths = []v1alpha1.HotPathUsage{{Path: hotPath, Bytes: bytes * 9 / 10, Files: 3}}
	}
	w.Status.Containers = append(w.Status.Containers, c)
	w.Status.ContainerCount++
	w.Status.TotalBytes += bytes
	return w
}

// KubeletEviction sets the node's kubelet hard eviction thresholds on nodefs, as read from its
// configuration file, and marks the report's filesystem as the kubelet's nodefs.
func (w *ReportWrapper) KubeletEviction(nodefsAvailable, nodefsInodesFree string) *ReportWrapper {
	w.Status.KubeletEviction = &v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile,
		NodefsAvailable: nodefsAvailable, NodefsInodesFree: nodefsInodesFree}
	for i := range w.Status.Filesystems {
		w.Status.Filesystems[i].KubeletFilesystem = v1alpha1.KubeletNodefs
	}
	return w
}

// Obj returns the built report.
func (w *ReportWrapper) Obj() *v1alpha1.NodeLayerReport { return w.NodeLayerReport.DeepCopy() }
