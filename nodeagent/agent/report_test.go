package agent

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery"
	"github.com/layerkeeper/layerkeeper/nodeagent/kubelet"
	"github.com/layerkeeper/layerkeeper/nodeagent/measure"
)

func TestShouldWrite(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { mt := metav1.NewTime(t0.Add(d)); return &mt }
	base := func() *v1alpha1.NodeLayerReportStatus {
		return &v1alpha1.NodeLayerReportStatus{
			ScanTime:       at(0),
			ContainerCount: 2,
			Containers: []v1alpha1.ContainerLayer{
				{ContainerID: "a", State: v1alpha1.ContainerRunning, Pod: "p", Container: "c", Bytes: 1000},
				{ContainerID: "b", State: v1alpha1.ContainerRunning, Pod: "q", Container: "c", Bytes: 0},
			},
			Filesystems: []v1alpha1.FilesystemUsage{{Path: "/", AvailableBytes: 1 << 30}},
			Conditions:  []metav1.Condition{{Type: v1alpha1.ConditionScanned, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonScanComplete}},
		}
	}
	cases := []struct {
		name       string
		prev       *v1alpha1.NodeLayerReportStatus
		mutate     func(*v1alpha1.NodeLayerReportStatus)
		after      time.Duration
		want       bool
		wantReason string
	}{
		{name: "no previous report", prev: nil, want: true, wantReason: "first"},
		{name: "nothing moved", prev: base(), after: time.Minute},
		{name: "bytes moved 5% exactly", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[0].Bytes = 1050 }},
		{name: "bytes moved over 5%", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[0].Bytes = 1051 },
			want: true, wantReason: "bytes"},
		{name: "bytes shrank over 5%", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[0].Bytes = 900 },
			want: true, wantReason: "bytes"},
		{name: "an empty layer starts growing", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[1].Bytes = 4096 },
			want: true, wantReason: "bytes"},
		{name: "a container appeared", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) {
			s.Containers = append(s.Containers, v1alpha1.ContainerLayer{ContainerID: "c"})
			s.ContainerCount++
		}, want: true, wantReason: "containers"},
		{name: "a container was replaced", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[1].ContainerID = "z" },
			want: true, wantReason: "containers"},
		{name: "a container stopped", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[0].State = v1alpha1.ContainerStopped },
			want: true, wantReason: "containers"},
		{name: "the pod status caught up with the identity", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[0].Pod = "p2" },
			want: true, wantReason: "containers"},
		{name: "free space moved over 5%", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Filesystems[0].AvailableBytes = 900 << 20 },
			want: true, wantReason: "filesystems"},
		{name: "scan became partial", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) {
			s.Conditions[0].Status, s.Conditions[0].Reason = metav1.ConditionFalse, v1alpha1.ReasonScanPartial
		}, want: true, wantReason: "condition"},
		{name: "the kubelet's thresholds appeared (a new agent)", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) {
			s.KubeletEviction = &v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile, NodefsAvailable: "10%"}
		}, want: true, wantReason: "kubelet"},
		{name: "a kubelet threshold changed", prev: withKubelet(base(), "10%"), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) {
			withKubelet(s, "15%")
		}, want: true, wantReason: "kubelet"},
		{name: "the same kubelet thresholds", prev: withKubelet(base(), "10%"), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) {
			withKubelet(s, "10%")
		}},
		{name: "a filesystem turned out to be the kubelet's imagefs", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) {
			s.Filesystems[0].KubeletFilesystem = v1alpha1.KubeletImagefs
		}, want: true, wantReason: "kubelet"},
		{name: "heartbeat due", prev: base(), after: 5 * time.Minute, want: true, wantReason: "heartbeat"},
		{name: "just before the heartbeat", prev: base(), after: 5*time.Minute - time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := base()
			next.ScanTime = at(tc.after)
			if tc.mutate != nil {
				tc.mutate(next)
			}
			got, reason := ShouldWrite(tc.prev, next, t0.Add(tc.after), WriteOptions{})
			if got != tc.want || reason != tc.wantReason {
				t.Errorf("ShouldWrite = %v %q, want %v %q", got, reason, tc.want, tc.wantReason)
			}
		})
	}
}

func withKubelet(s *v1alpha1.NodeLayerReportStatus, nodefsAvailable string) *v1alpha1.NodeLayerReportStatus {
	s.KubeletEviction = &v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile, NodefsAvailable: nodefsAvailable,
		Message: "kubelet PID 1: read --config /var/lib/kubelet/config.yaml"}
	return s
}

func TestBuildKubelet(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	res := measure.Result{Started: now, Filesystems: []discovery.FS{
		{Path: "/", Device: "8:1", CapacityBytes: 100 << 30},
		{Path: "/var/lib/containerd", Device: "8:17", CapacityBytes: 500 << 30},
	}}
	ke := v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile, NodefsAvailable: "10%", ImagefsAvailable: "2Gi"}
	cases := map[string]struct {
		kl       *kubelet.Result
		wantKE   *v1alpha1.KubeletEviction
		wantKFSs []v1alpha1.KubeletFilesystem
	}{
		"no kubelet read": {wantKFSs: []v1alpha1.KubeletFilesystem{"", ""}},
		"nodefs unknown":  {kl: &kubelet.Result{Eviction: ke}, wantKE: &ke, wantKFSs: []v1alpha1.KubeletFilesystem{"", ""}},
		"the root directory on the root disk": {kl: &kubelet.Result{Eviction: ke, NodefsDevice: "8:1"}, wantKE: &ke,
			wantKFSs: []v1alpha1.KubeletFilesystem{v1alpha1.KubeletNodefs, v1alpha1.KubeletImagefs}},
		"the root directory with the runtime": {kl: &kubelet.Result{Eviction: ke, NodefsDevice: "8:17"}, wantKE: &ke,
			wantKFSs: []v1alpha1.KubeletFilesystem{v1alpha1.KubeletImagefs, v1alpha1.KubeletNodefs}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st := Build(res, tc.kl, nil, now, BuildOptions{})
			if d := cmp.Diff(tc.wantKE, st.KubeletEviction); d != "" {
				t.Errorf("kubeletEviction mismatch (-want +got):\n%s", d)
			}
			var got []v1alpha1.KubeletFilesystem
			for _, f := range st.Filesystems {
				got = append(got, f.KubeletFilesystem)
			}
			if d := cmp.Diff(tc.wantKFSs, got); d != "" {
				t.Errorf("kubeletFilesystem mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestBuildJoinsPods(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	yes := true
	pod := func(name, uid string, owners ...metav1.OwnerReference) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "airflow", UID: types.UID(uid), OwnerReferences: owners},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "scheduler"}}}}
	}
	rs := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "scheduler-7d9f", Controller: &yes}
	notController := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "cm"}
	running := func(p corev1.Pod, id string) corev1.Pod {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "scheduler", ContainerID: "containerd://" + id}}
		return p
	}
	restarted := func(p corev1.Pod, id, previous string) corev1.Pod {
		p = running(p, id)
		p.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "containerd://" + previous}
		return p
	}
	container := func(id, podUID, name string) measure.Container {
		return measure.Container{Container: discovery.Container{Runtime: v1alpha1.RuntimeContainerd, ID: id, PodUID: podUID, Name: name}}
	}
	cases := map[string]struct {
		pods []corev1.Pod
		c    measure.Container
		want v1alpha1.ContainerLayer
	}{
		"by container ID, with the pod's controller": {
			pods: []corev1.Pod{running(pod("scheduler-7d9f-abcde", "u1", notController, rs), "c1")},
			c:    container("c1", "", ""),
			want: v1alpha1.ContainerLayer{Namespace: "airflow", Pod: "scheduler-7d9f-abcde", PodUID: "u1", Container: "scheduler",
				Owner: &v1alpha1.PodOwner{Kind: "ReplicaSet", Name: "scheduler-7d9f"}},
		},
		"a previous instance by its last termination": {
			pods: []corev1.Pod{restarted(pod("scheduler-7d9f-abcde", "u1", rs), "c2", "c1")},
			c:    container("c1", "", ""),
			want: v1alpha1.ContainerLayer{Namespace: "airflow", Pod: "scheduler-7d9f-abcde", PodUID: "u1", Container: "scheduler",
				Owner: &v1alpha1.PodOwner{Kind: "ReplicaSet", Name: "scheduler-7d9f"}},
		},
		"by pod UID and name before the status shows the ID": {
			pods: []corev1.Pod{pod("scheduler-7d9f-abcde", "u1", rs)},
			c:    container("c3", "u1", "scheduler"),
			want: v1alpha1.ContainerLayer{Namespace: "airflow", Pod: "scheduler-7d9f-abcde", PodUID: "u1", Container: "scheduler",
				Owner: &v1alpha1.PodOwner{Kind: "ReplicaSet", Name: "scheduler-7d9f"}},
		},
		"a bare pod has no owner": {
			pods: []corev1.Pod{running(pod("debug", "u2", notController), "c4")},
			c:    container("c4", "", ""),
			want: v1alpha1.ContainerLayer{Namespace: "airflow", Pod: "debug", PodUID: "u2", Container: "scheduler"},
		},
		"a container of no pod keeps the runtime's identity": {
			pods: []corev1.Pod{running(pod("other", "u3", rs), "c5")},
			c:    container("c6", "", "buildkit"),
			want: v1alpha1.ContainerLayer{Container: "buildkit"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st := Build(measure.Result{Started: now, Containers: []measure.Container{tc.c}}, nil, tc.pods, now, BuildOptions{})
			if len(st.Containers) != 1 {
				t.Fatalf("containers = %+v, want one", st.Containers)
			}
			got := st.Containers[0]
			tc.want.Runtime, tc.want.ContainerID, tc.want.State = v1alpha1.RuntimeContainerd, tc.c.ID, v1alpha1.ContainerStopped
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("entry mismatch (-want +got):\n%s", d)
			}
		})
	}
}
