package evaluation

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

func TestTopHotPath(t *testing.T) {
	hp := func(path string, bytes int64) v1alpha1.HotPathUsage {
		return v1alpha1.HotPathUsage{Path: path, Bytes: bytes}
	}
	cases := map[string]struct {
		in   []v1alpha1.HotPathUsage
		want string // "" for none
	}{
		"none":      {},
		"all empty": {in: []v1alpha1.HotPathUsage{hp("/tmp", 0)}},
		"largest flat entry": {
			in:   []v1alpha1.HotPathUsage{hp("/tmp", Gi), hp("/var/log", 3*Gi), hp("/root", 2*Gi)},
			want: "/var/log",
		},
		"descends to the directory that holds most of it": {
			in: []v1alpha1.HotPathUsage{hp("/opt/airflow/logs", 4*Gi), hp("/opt/airflow/logs/scheduler", 3900*Mi),
				hp("/opt/airflow/logs/scheduler/2026-11-25", 3800*Mi), hp("/opt/airflow/logs/dag", 100*Mi)},
			want: "/opt/airflow/logs/scheduler/2026-11-25",
		},
		"stays when no child holds half": {
			in:   []v1alpha1.HotPathUsage{hp("/data", 4*Gi), hp("/data/a", 1*Gi), hp("/data/b", 1*Gi)},
			want: "/data",
		},
		"a sibling prefix is not a child": {
			in:   []v1alpha1.HotPathUsage{hp("/data", 4*Gi), hp("/data2", 3*Gi)},
			want: "/data",
		},
		"from the root": {
			in:   []v1alpha1.HotPathUsage{hp("/", 5*Gi), hp("/var", 4*Gi), hp("/var/log", 3*Gi), hp("/usr", Gi)},
			want: "/var/log",
		},
		"equal sizes: the first path by name": {
			in:   []v1alpha1.HotPathUsage{hp("/b", Gi), hp("/a", Gi)},
			want: "/a",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := TopHotPath(tc.in)
			if got.Path != tc.want || ok != (tc.want != "") {
				t.Errorf("TopHotPath() = %q, %v; want %q", got.Path, ok, tc.want)
			}
		})
	}
}

func TestFilesystemOf(t *testing.T) {
	two := []v1alpha1.FilesystemUsage{{Path: "/"}, {Path: "/var/lib/containerd"}}
	cases := []struct {
		fss  []v1alpha1.FilesystemUsage
		dir  string
		want string
	}{
		{two, "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/42/fs", "/var/lib/containerd"},
		{two, "/var/lib/docker/overlay2/abc/diff", "/"},
		{[]v1alpha1.FilesystemUsage{{Path: "/var/lib/containerd"}, {Path: "/var/lib/docker"}}, "/var/lib/containers/x", ""},
		{[]v1alpha1.FilesystemUsage{{Path: "/var/lib/containerd"}}, "", "/var/lib/containerd"},
		{[]v1alpha1.FilesystemUsage{{Path: "/var/lib/containerd"}}, "/var/lib/containerd-other/x", "/var/lib/containerd"},
		{nil, "/x", ""},
	}
	for _, tc := range cases {
		if got := FilesystemOf(tc.fss, tc.dir); got != tc.want {
			t.Errorf("FilesystemOf(%v, %q) = %q, want %q", tc.fss, tc.dir, got, tc.want)
		}
	}
}

func TestPodsFromReport(t *testing.T) {
	scan := metav1.NewTime(t0)
	report := &v1alpha1.NodeLayerReport{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
		Status: v1alpha1.NodeLayerReportStatus{
			ScanTime:    &scan,
			Filesystems: []v1alpha1.FilesystemUsage{{Path: "/var/lib/containerd"}, {Path: "/var/lib/docker"}},
			Containers: []v1alpha1.ContainerLayer{
				{ContainerID: "c1", State: v1alpha1.ContainerRunning, Namespace: "b", Pod: "web", PodUID: "u1", Container: "app",
					UpperDir: "/var/lib/containerd/snapshots/1/fs", Bytes: 5 * Gi, DeletedOpenBytes: Mi, Inodes: 9, GrowthBytesPerMinute: Mi,
					HotPaths: []v1alpha1.HotPathUsage{{Path: "/logs", Bytes: 4 * Gi}}},
				{ContainerID: "host", State: v1alpha1.ContainerRunning, Bytes: 9 * Gi}, // outside Kubernetes
				{ContainerID: "c2", State: v1alpha1.ContainerRunning, Namespace: "a", Pod: "db", PodUID: "u2", Container: "pg",
					UpperDir: "/var/lib/docker/overlay2/x/diff", Bytes: 2 * Gi},
				{ContainerID: "c3", State: v1alpha1.ContainerStopped, Namespace: "b", Pod: "web", PodUID: "u1", Container: "app",
					UpperDir: "/var/lib/containerd/snapshots/0/fs", Bytes: Gi},
				{ContainerID: "c4", State: v1alpha1.ContainerRunning, Namespace: "b", Pod: "old", Container: "app", Bytes: 1},
			},
		},
	}
	at := t0
	want := []PodFigures{
		{Namespace: "a", Pod: "db", PodUID: "u2", Node: "node-1", ReportTime: &at, Containers: []ContainerFigures{
			{Name: "pg", ContainerID: "c2", State: v1alpha1.ContainerRunning, Bytes: 2 * Gi, Filesystem: "/var/lib/docker"},
		}},
		{Namespace: "b", Pod: "old", Node: "node-1", ReportTime: &at, Containers: []ContainerFigures{
			{Name: "app", ContainerID: "c4", State: v1alpha1.ContainerRunning, Bytes: 1},
		}},
		{Namespace: "b", Pod: "web", PodUID: "u1", Node: "node-1", ReportTime: &at, Containers: []ContainerFigures{
			{Name: "app", ContainerID: "c1", State: v1alpha1.ContainerRunning, Bytes: 5 * Gi, DeletedOpenBytes: Mi, Inodes: 9,
				GrowthBytesPerMinute: Mi, HotPaths: []v1alpha1.HotPathUsage{{Path: "/logs", Bytes: 4 * Gi}}, Filesystem: "/var/lib/containerd"},
			{Name: "app", ContainerID: "c3", State: v1alpha1.ContainerStopped, Bytes: Gi, Filesystem: "/var/lib/containerd"},
		}},
	}
	if d := diffOf(want, PodsFromReport(report)); d != "" {
		t.Errorf("PodsFromReport() mismatch (-want +got):\n%s", d)
	}
	if got := PodsFromReport(nil); got != nil {
		t.Errorf("PodsFromReport(nil) = %v, want nil", got)
	}
	report.Status.ScanTime = nil
	for _, p := range PodsFromReport(report) {
		if p.ReportTime != nil {
			t.Errorf("PodsFromReport() without scanTime: pod %s has ReportTime %v, want nil", p.Pod, p.ReportTime)
		}
	}
}
