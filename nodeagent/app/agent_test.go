package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
	"github.com/layerkeeper/layerkeeper/nodeagent/kubelet"
	"github.com/layerkeeper/layerkeeper/test/builders"
	"github.com/layerkeeper/layerkeeper/test/framework"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// TestAgentWritesItsReport runs agent passes against a real API server and a real overlay in
// containerd's CRI layout: the container is joined with its pod, its bytes equal du, a
// policy's hot path is measured exactly, unchanged passes write nothing, a >5% move and the
// heartbeat write.
func TestAgentWritesItsReport(t *testing.T) {
	id, state, upper := criLayout(t)
	api, err := framework.StartAPIServer()
	if err != nil {
		t.Fatal(err)
	}
	if api == nil {
		testenv.Unavailable(t, "envtest assets (%s)", framework.AssetsEnv)
	}
	t.Cleanup(func() { _ = api.Stop() })
	c := api.Client
	ctx := context.Background()

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	must(c.Create(ctx, node))
	must(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "airflow"}}))
	controller := true
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "airflow-scheduler-7d9f-abcde", Namespace: "airflow", Labels: map[string]string{"component": "scheduler"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "airflow-scheduler-7d9f", UID: "0c0ffee0-0000-4000-8000-000000000001", Controller: &controller}}},
		Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "scheduler", Image: "example.invalid/airflow"}}}}
	must(c.Create(ctx, pod))
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "scheduler", ContainerID: "containerd://" + id, Image: "example.invalid/airflow"}}
	must(c.Status().Update(ctx, pod))
	must(c.Create(ctx, builders.MakeLayerPolicy("logs", "airflow").MatchLabels("component", "scheduler").HotPath("/opt/airflow/logs").Obj()))

	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	a := NewAgent(c, AgentOptions{NodeName: "node-a", HostRoot: "/", HostProc: onlyMountsUnder(t, state),
		ContainerdSocket: socketFlag{set: true}, Runtimes: []v1alpha1.Runtime{v1alpha1.RuntimeContainerd},
		ContainerdState: state, Top: 3, Workers: 1, ChangeFraction: 0.05, Heartbeat: 5 * time.Minute}, "test", clk)

	// The kubelet, as the agent finds it in /proc: here a fake /proc whose kubelet's root is a
	// scratch directory on the same filesystem as the layer.
	a.Kubelet = fakeKubelet(t, "node-a", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"+
		"mergeDefaultEvictionSettings: true\nevictionHard:\n  nodefs.available: 12%\n  imagefs.available: 2Gi\n")

	report := func() *v1alpha1.NodeLayerReport {
		t.Helper()
		r := &v1alpha1.NodeLayerReport{}
		must(c.Get(ctx, client.ObjectKey{Name: "node-a"}, r))
		return r
	}
	must(a.Pass(ctx))
	r := report()
	if len(r.OwnerReferences) != 1 || r.OwnerReferences[0].UID != node.UID {
		t.Errorf("owner references = %+v, want the Node", r.OwnerReferences)
	}
	var entry *v1alpha1.ContainerLayer
	for i := range r.Status.Containers {
		if r.Status.Containers[i].ContainerID == id {
			entry = &r.Status.Containers[i]
		}
	}
	if entry == nil {
		t.Fatalf("container %s not in report %+v", id, r.Status)
	}
	if entry.Pod != pod.Name || entry.Namespace != "airflow" || entry.PodUID != string(pod.UID) || entry.Container != "scheduler" || entry.State != v1alpha1.ContainerRunning {
		t.Errorf("identity = %+v", *entry)
	}
	if want := (v1alpha1.PodOwner{Kind: "ReplicaSet", Name: "airflow-scheduler-7d9f"}); entry.Owner == nil || *entry.Owner != want {
		t.Errorf("owner = %+v, want %+v", entry.Owner, want)
	}
	if want := duBytes(t, upper); entry.Bytes != want {
		t.Errorf("bytes = %d, du -sB1 = %d", entry.Bytes, want)
	}
	var hot *v1alpha1.HotPathUsage
	for i := range entry.HotPaths {
		if entry.HotPaths[i].Path == "/opt/airflow/logs" {
			hot = &entry.HotPaths[i]
		}
	}
	if hot == nil || hot.Files != 20 {
		t.Errorf("policy hot path /opt/airflow/logs missing or wrong in %+v", entry.HotPaths)
	}
	if cond := meta.FindStatusCondition(r.Status.Conditions, v1alpha1.ConditionScanned); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("Scanned condition = %+v", cond)
	}
	if r.Status.ContainerCount != 1 || r.Status.TotalBytes != entry.Bytes || len(r.Status.Filesystems) == 0 || r.Status.NodeAvailableBytes <= 0 {
		t.Errorf("summary = count %d total %d fs %+v available %d", r.Status.ContainerCount, r.Status.TotalBytes, r.Status.Filesystems, r.Status.NodeAvailableBytes)
	}
	ke := r.Status.KubeletEviction
	if ke == nil || ke.Source != v1alpha1.KubeletEvictionConfigFile || ke.NodefsAvailable != "12%" || ke.NodefsInodesFree != "5%" ||
		ke.ImagefsAvailable != "2Gi" || ke.ImagefsInodesFree != "5%" || !strings.Contains(ke.Message, "read --config /var/lib/kubelet/config.yaml") {
		t.Errorf("kubeletEviction = %+v, want the fake kubelet's 12%% and 2Gi merged with the defaults", ke)
	}
	layerFS := evaluation.FilesystemOf(r.Status.Filesystems, entry.UpperDir)
	found := false
	for _, f := range r.Status.Filesystems {
		if f.Path == layerFS {
			found = true
			if f.KubeletFilesystem != v1alpha1.KubeletNodefs {
				t.Errorf("filesystem %s holding the layer and the kubelet's root directory is %q, want nodefs", f.Path, f.KubeletFilesystem)
			}
		}
	}
	if !found {
		t.Errorf("no filesystem of %+v holds the layer %s", r.Status.Filesystems, entry.UpperDir)
	}

	// Unchanged figures a minute later: no write.
	rv := r.ResourceVersion
	clk.Step(time.Minute)
	must(a.Pass(ctx))
	if got := report().ResourceVersion; got != rv {
		t.Errorf("an unchanged pass wrote the report (resourceVersion %s -> %s)", rv, got)
	}

	// The log grows by far more than 5%: one write.
	merged := filepath.Join(state, "io.containerd.runtime.v2.task", "k8s.io", id, "rootfs")
	must(os.WriteFile(filepath.Join(merged, "opt", "airflow", "logs", "scheduler", "2026-11-25", "big.log"),
		[]byte(strings.Repeat("x", 4<<20)), 0o644))
	clk.Step(time.Minute)
	must(a.Pass(ctx))
	r = report()
	if r.ResourceVersion == rv {
		t.Fatalf("a 4 MiB growth did not write the report")
	}
	rv = r.ResourceVersion
	if want := duBytes(t, upper); r.Status.Containers[0].Bytes != want {
		t.Errorf("bytes after growth = %d, du -sB1 = %d", r.Status.Containers[0].Bytes, want)
	}
	if r.Status.Containers[0].GrowthBytesPerMinute <= 0 {
		t.Errorf("growth = %d, want > 0", r.Status.Containers[0].GrowthBytesPerMinute)
	}

	// Nothing moves, but the heartbeat is due.
	clk.Step(6 * time.Minute)
	must(a.Pass(ctx))
	if got := report().ResourceVersion; got == rv {
		t.Errorf("no write after the heartbeat interval")
	}
}

// onlyMountsUnder returns a stand-in for the host's /proc whose 1/mountinfo lists only the
// host's / and the mounts under dir: containers of other runtimes on the machine (another
// test's cluster) come and go, and would make the report move.
func onlyMountsUnder(t *testing.T, dir string) string {
	t.Helper()
	raw, err := os.ReadFile("/proc/1/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == "/" || strings.HasPrefix(f[4], dir+"/")) {
			keep = append(keep, line)
		}
	}
	proc := filepath.Join(t.TempDir(), "proc")
	if err := os.MkdirAll(filepath.Join(proc, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "1", "mountinfo"), []byte(strings.Join(keep, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return proc
}

// fakeKubelet reads, with kubelet.Read, a kubelet process of a fake /proc started with
// --config=/var/lib/kubelet/config.yaml, whose root is a scratch directory holding config.
func fakeKubelet(t *testing.T, node, config string) func() kubelet.Result {
	t.Helper()
	root, proc := t.TempDir(), t.TempDir()
	for p, content := range map[string]string{
		filepath.Join(root, "var", "lib", "kubelet", "config.yaml"): config,
		filepath.Join(proc, "1", "comm"):                            "systemd\n",
		filepath.Join(proc, "1", "cmdline"):                         "/sbin/init\x00",
		filepath.Join(proc, "4242", "comm"):                         "kubelet\n",
		filepath.Join(proc, "4242", "cmdline"):                      "/usr/bin/kubelet\x00--config=/var/lib/kubelet/config.yaml\x00--hostname-override=" + node + "\x00",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(root, filepath.Join(proc, "4242", "root")); err != nil {
		t.Fatal(err)
	}
	return func() kubelet.Result { return kubelet.Read(kubelet.Options{HostProc: proc, NodeName: node}) }
}
