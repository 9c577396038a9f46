package cri

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery"
	"github.com/layerkeeper/layerkeeper/nodeagent/measure"
	"github.com/layerkeeper/layerkeeper/nodeagent/scanner"
	ctd "github.com/layerkeeper/layerkeeper/test/engines/containerd"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// The scheduler container writes writeRate bytes per second for writeFor, then idles.
const (
	writeRate = 64 << 10
	writeFor  = 8 * time.Second
	logDir    = "/opt/airflow/logs/scheduler"
)

var pod = ctd.Pod{
	Name:      "airflow-scheduler-7d9f8b6c5-x2k4p",
	Namespace: "data-pipelines",
	UID:       "0b8e6f52-3c1d-4a7e-9f26-d41c8a5e7b93",
	Labels:    map[string]string{"app.kubernetes.io/name": "airflow", "component": "scheduler", "pod-template-hash": "7d9f8b6c5"},
}

// TestCRIPodWritableLayer runs an Airflow-like scheduler pod through CRI and checks what
// discovery and measure report for it while it writes, once it has written a known amount,
// once it is stopped and once it is removed.
func TestCRIPodWritableLayer(t *testing.T) {
	testenv.RequireRoot(t)
	for _, b := range []string{"containerd", "runc", "ctr", "du"} {
		testenv.RequireBinary(t, b)
	}
	var c *ctd.Containerd
	// Registered first, so it runs last: after the harness's teardown nothing of it remains.
	t.Cleanup(func() {
		if c == nil {
			return
		}
		if out, err := exec.Command("grep", "-F", c.Dir+"/", "/proc/self/mountinfo").Output(); err == nil || len(out) > 0 {
			t.Errorf("mounts left under %s:\n%s", c.Dir, out)
		}
		if left := c.Leftovers(); len(left) > 0 {
			t.Errorf("left behind:\n%s", strings.Join(left, "\n"))
		}
	})
	c = ctd.Start(t)
	c.ImportLogWriter(t)
	// The only TCP listener is the CRI streaming server, on loopback.
	ls, err := c.TCPListeners()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if host, _, _ := net.SplitHostPort(l); !net.ParseIP(host).IsLoopback() {
			t.Errorf("containerd listens on %s, off loopback", l)
		}
	}
	t.Logf("containerd TCP listeners: %v", ls)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()

	podID, err := c.RunPodSandbox(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	ctrID, err := c.CreateContainer(ctx, podID, pod, ctd.Container{
		Name:  "scheduler",
		Image: ctd.LogWriterImage,
		Args:  []string{"-dir", logDir, "-rate", strconv.Itoa(writeRate), "-for", writeFor.String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartContainer(ctx, ctrID); err != nil {
		t.Fatal(err)
	}
	waitLog(t, ctx, c, ctrID, "started", 30*time.Second)

	// The agent's view of this node: the host mount table, the harness's state directory and
	// containerd's socket.
	m := measure.New(measure.Options{
		Discovery: discovery.Options{
			ContainerdState:  c.State,
			ContainerdSocket: c.Socket,
			Runtimes:         []v1alpha1.Runtime{v1alpha1.RuntimeContainerd},
		},
		IncludeSandboxes: true,
	})

	// While it writes: identity from CRI, and two passes a few seconds apart for growth.
	first := measurePass(t, ctx, m)
	got := find(t, first, ctrID)
	t.Run("identity", func(t *testing.T) {
		if !got.Running || got.ID != ctrID || discovery.K8sContainerID(got.Container) != "containerd://"+ctrID ||
			got.Namespace != pod.Namespace || got.Pod != pod.Name || got.PodUID != pod.UID ||
			got.Name != "scheduler" || got.Sandbox || got.EngineNamespace != ctd.Namespace || got.EngineRoot != c.State {
			t.Errorf("container = %+v\nwant running %s scheduler of %s/%s (%s) in %s", got.Container, ctrID, pod.Namespace, pod.Name, pod.UID, c.State)
		}
		if len(got.PIDs) == 0 {
			t.Errorf("no verified PIDs for the running container")
		}
		sb := find(t, first, podID)
		if !sb.Running || !sb.Sandbox || sb.Name != "POD" || sb.Pod != pod.Name || sb.Namespace != pod.Namespace || sb.PodUID != pod.UID {
			t.Errorf("sandbox = %+v, want the running pause sandbox %s of the pod", sb.Container, podID)
		}
		st, err := c.ContainerStatus(ctx, ctrID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING || st.Metadata.Name != got.Name || st.Labels[ctd.LabelPodUID] != got.PodUID {
			t.Errorf("CRI status %v %+v disagrees with discovery", st.State, st.Metadata)
		}
	})

	time.Sleep(3 * time.Second)
	second := measurePass(t, ctx, m)
	t.Run("growth", func(t *testing.T) {
		g := find(t, second, ctrID)
		want := int64(writeRate * 60)
		t.Logf("growth: %d B/min over %v (writing %d B/min); bytes %d -> %d",
			g.GrowthBytesPerMinute, second.Started.Sub(first.Started).Round(time.Millisecond), want, got.Usage.Bytes, g.Usage.Bytes)
		if !g.HasGrowth || g.GrowthBytesPerMinute <= 0 {
			t.Fatalf("no growth detected for a running writer: %+v", g)
		}
		// A generous band: no timing assertion beyond the right order of magnitude.
		if g.GrowthBytesPerMinute < want/4 || g.GrowthBytesPerMinute > want*4 {
			t.Errorf("growth %d B/min, want within a factor 4 of %d B/min", g.GrowthBytesPerMinute, want)
		}
	})

	// Once the writer has written its fixed amount and idles, the layer no longer changes.
	out := waitLog(t, ctx, c, ctrID, "done ", writeFor+30*time.Second)
	doneAt := time.Now()
	written := doneBytes(t, out)
	third := measurePass(t, ctx, m)
	final := find(t, third, ctrID)
	upper := final.UpperDirPath()
	t.Run("bytes", func(t *testing.T) {
		du := duBytes(t, upper)
		logs, _ := filepath.Glob(filepath.Join(upper, logDir, "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]", "scheduler.log"))
		if len(logs) != 1 {
			t.Fatalf("want one dated scheduler.log in the upper directory, found %v", logs)
		}
		fi, err := os.Stat(logs[0])
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("upperdir %s: our Usage.Bytes %d (full pass %v, %d carried), du -sB1 %d, log file %d bytes written %d",
			final.UpperDir, final.Usage.Bytes, final.Usage.Full, final.Usage.CarriedEntries, du, fi.Size(), written)
		if final.Usage.Bytes != du {
			t.Errorf("Usage.Bytes = %d, du -sB1 %s = %d", final.Usage.Bytes, upper, du)
		}
		if fi.Size() != written || final.Usage.Bytes < written {
			t.Errorf("log file %d bytes, Usage.Bytes %d; the workload wrote %d", fi.Size(), final.Usage.Bytes, written)
		}
		dated := strings.TrimPrefix(filepath.Dir(logs[0]), upper)
		if !slices.ContainsFunc(final.Usage.TopDirs, func(d scanner.DirUsage) bool { return d.Path == dated && d.Bytes >= written }) {
			t.Errorf("TopDirs = %+v, want %s with at least %d bytes", final.Usage.TopDirs, dated, written)
		}

		// containerd walks every snapshot every 10 s; wait for a walk after the last write.
		var used uint64
		var at int64
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := c.ContainerStats(ctx, ctrID)
			if err != nil {
				t.Fatal(err)
			}
			if wl := st.GetWritableLayer(); wl != nil && wl.Timestamp > doneAt.UnixNano() {
				used, at = wl.GetUsedBytes().GetValue(), wl.Timestamp
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRI writable-layer stats not refreshed within 30s after the last write: %+v", st.GetWritableLayer())
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("CRI ContainerStats writable_layer.used_bytes %d (taken %v after the last write); our Usage.Bytes %d",
			used, time.Unix(0, at).Sub(doneAt).Round(time.Millisecond), final.Usage.Bytes)
		if diff := int64(used) - final.Usage.Bytes; diff*100 > final.Usage.Bytes || -diff*100 > final.Usage.Bytes {
			t.Errorf("Usage.Bytes %d and CRI used_bytes %d differ by more than 1%%", final.Usage.Bytes, used)
		}
	})

	// Stopped through CRI: containerd's CRI plugin deletes the task as soon as it exits, so
	// the rootfs mount and the task bundle are gone while the container record and its
	// snapshot (the upper directory) stay. runtime-layouts.md: "task deleted: mount gone,
	// upperdir stays on disk while the container record exists". Discovery finds it through
	// containerd's API: not running, the same identity and layer, measured like any other.
	t.Run("stopped", func(t *testing.T) {
		before := duBytes(t, upper)
		if err := c.StopContainer(ctx, ctrID, 10); err != nil {
			t.Fatal(err)
		}
		st, err := c.ContainerStatus(ctx, ctrID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			t.Fatalf("after StopContainer the CRI state is %v", st.State)
		}
		if _, err := os.Stat(filepath.Join(c.State, "io.containerd.runtime.v2.task", ctd.Namespace, ctrID)); !os.IsNotExist(err) {
			t.Errorf("task bundle still present after CRI stop (err %v): the task was not deleted", err)
		}
		if out, _ := exec.Command("grep", "-F", ctrID, "/proc/self/mountinfo").Output(); len(out) > 0 {
			t.Errorf("the stopped container's rootfs is still mounted:\n%s", out)
		}
		res := measurePass(t, ctx, m)
		stopped := find(t, res, ctrID)
		checkStopped(t, stopped, final, st.ExitCode, written)
		if sb := find(t, res, podID); !sb.Running || !sb.Sandbox {
			t.Errorf("sandbox = %+v, want still running", sb.Container)
		}
		t.Logf("stopped (exit code %d): reported not running, %d bytes (du -sB1 %d before the stop)", st.ExitCode, stopped.Usage.Bytes, before)

		if err := c.RemoveContainer(ctx, ctrID); err != nil {
			t.Fatal(err)
		}
		for _, mc := range measurePass(t, ctx, m).Containers {
			if mc.ID == ctrID {
				t.Errorf("removed container still reported: %+v", mc.Container)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Lstat(upper); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("upper directory %s still present 10s after RemoveContainer", upper)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("exited", func(t *testing.T) { checkExited(t, ctx, c, m, podID) })
	t.Run("removed during a pass", func(t *testing.T) { checkRemovedDuringPass(t, ctx, c, podID) })
}

// checkRemovedDuringPass removes a container through CRI after a pass discovered it and
// before it is scanned (as the kubelet does with a deleted pod while the agent measures): its
// upper directory is gone by then. The pass leaves it out without reporting a problem, and
// measures the others as usual.
func checkRemovedDuringPass(t *testing.T, ctx context.Context, c *ctd.Containerd, podID string) {
	id, err := c.CreateContainer(ctx, podID, pod, ctd.Container{
		Name:  "triggerer",
		Image: ctd.LogWriterImage,
		Args:  []string{"-dir", logDir, "-name", "triggerer.log", "-rate", strconv.Itoa(writeRate), "-for", "1h"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitLog(t, ctx, c, id, "started", 30*time.Second)
	var upper string
	removed := false
	// HotPathsFor runs for each discovered container before any is scanned: the moment
	// between discovery and the scan.
	m := measure.New(measure.Options{
		Discovery: discovery.Options{ContainerdState: c.State, ContainerdSocket: c.Socket, Runtimes: []v1alpha1.Runtime{v1alpha1.RuntimeContainerd}},
		HotPathsFor: func(dc discovery.Container) []string {
			if dc.ID != id || removed {
				return nil
			}
			removed, upper = true, dc.UpperDirPath()
			if err := c.StopContainer(ctx, id, 10); err != nil {
				t.Error(err)
			}
			if err := c.RemoveContainer(ctx, id); err != nil {
				t.Error(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				if _, err := os.Lstat(upper); os.IsNotExist(err) {
					return nil
				}
				if time.Now().After(deadline) {
					t.Errorf("upper directory %s still present 10s after RemoveContainer", upper)
					return nil
				}
				time.Sleep(50 * time.Millisecond)
			}
		},
	})
	res := measurePass(t, ctx, m) // fails the test on any pass or container error
	if !removed {
		t.Fatalf("the pass did not discover container %s", id)
	}
	for _, mc := range res.Containers {
		if mc.ID == id {
			t.Errorf("a container removed during the pass is reported: %+v", mc.Container)
		}
	}
	if len(res.Containers) == 0 || len(res.Filesystems) == 0 {
		t.Errorf("the pass measured %d containers on %d filesystems, want the pod's others", len(res.Containers), len(res.Filesystems))
	}
	t.Logf("removed between discovery and its scan (upper %s gone): left out; %d others measured", upper, len(res.Containers))
}

// checkStopped checks a stopped container's measurement against its last running one: same
// identity and layer, not running, no processes and so no deleted-open bytes, bytes as du
// counts them and at least what the workload wrote.
func checkStopped(t *testing.T, got, running measure.Container, exitCode int32, written int64) {
	t.Helper()
	if got.Running || got.Err != nil || len(got.PIDs) != 0 || got.MergedDir != "" || got.DeletedOpenBytes != 0 {
		t.Errorf("stopped container = %+v (err %v, deleted-open %d), want not running, no PIDs", got.Container, got.Err, got.DeletedOpenBytes)
	}
	if got.Namespace != running.Namespace || got.Pod != running.Pod || got.PodUID != running.PodUID || got.Name != running.Name ||
		got.Sandbox || got.EngineNamespace != ctd.Namespace || got.UpperDir != running.UpperDir || got.StorageID != running.StorageID ||
		discovery.K8sContainerID(got.Container) != discovery.K8sContainerID(running.Container) {
		t.Errorf("stopped container = %+v\nwant the identity and layer of %+v", got.Container, running.Container)
	}
	if du := duBytes(t, got.UpperDirPath()); got.Usage.Bytes != du || got.Usage.Bytes < written {
		t.Errorf("stopped (exit code %d): Usage.Bytes %d, du -sB1 %d; the workload wrote %d", exitCode, got.Usage.Bytes, du, written)
	}
}

// checkExited checks that a container whose process exits on its own (a crash the kubelet
// has not yet cleaned up) is, to containerd's CRI plugin and so to discovery, the same as a
// stopped one: task deleted, rootfs unmounted, reported not running with its upper directory.
func checkExited(t *testing.T, ctx context.Context, c *ctd.Containerd, m *measure.Measurer, podID string) {
	id, err := c.CreateContainer(ctx, podID, pod, ctd.Container{
		Name:  "dag-processor",
		Image: ctd.LogWriterImage,
		Args:  []string{"-dir", logDir, "-name", "dag_processor.log", "-rate", strconv.Itoa(writeRate), "-for", "2s", "-exit", "3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitLog(t, ctx, c, id, "started", 30*time.Second)
	running := find(t, measurePass(t, ctx, m), id)
	if !running.Running || running.Name != "dag-processor" || running.Pod != pod.Name {
		t.Fatalf("running container = %+v", running.Container)
	}
	var st *runtimeapi.ContainerStatus
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err = c.ContainerStatus(ctx, id); err != nil {
			t.Fatal(err)
		}
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container still %v 30s after start", st.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
	written := doneBytes(t, waitLog(t, ctx, c, id, "done ", time.Second))
	if st.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", st.ExitCode)
	}
	if out, _ := exec.Command("grep", "-F", id, "/proc/self/mountinfo").Output(); len(out) > 0 {
		t.Errorf("the exited container's rootfs is still mounted:\n%s", out)
	}
	exited := find(t, measurePass(t, ctx, m), id)
	checkStopped(t, exited, running, st.ExitCode, written)
	t.Logf("exited by itself (code %d): reported not running, %d bytes (log %d)", st.ExitCode, exited.Usage.Bytes, written)
	// Left for the harness's teardown, which removes it through CRI like the kubelet's GC.
}

func doneBytes(t *testing.T, log string) int64 {
	t.Helper()
	m := regexp.MustCompile(`done (\d+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no done line in the log:\n%s", log)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func measurePass(t *testing.T, ctx context.Context, m *measure.Measurer) measure.Result {
	t.Helper()
	res, err := m.Measure(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Errors {
		t.Errorf("measure: %v", e)
	}
	for _, c := range res.Containers {
		if c.Err != nil {
			t.Errorf("measure %s: %v", c.ID, c.Err)
		}
	}
	return res
}

func find(t *testing.T, res measure.Result, id string) measure.Container {
	t.Helper()
	var ids []string
	for _, c := range res.Containers {
		if c.ID == id {
			return c
		}
		ids = append(ids, c.ID)
	}
	t.Fatalf("container %s not found; found %v", id, ids)
	return measure.Container{}
}

// waitLog waits until the container's CRI log contains s and returns the log.
func waitLog(t *testing.T, ctx context.Context, c *ctd.Containerd, id, s string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := c.ContainerLog(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, s) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not in the container log within %v:\n%s", s, timeout, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func duBytes(t *testing.T, p string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-sB1", p).Output()
	if err != nil {
		t.Fatalf("du -sB1 %s: %v", p, err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatalf("du output %q: %v", out, err)
	}
	return n
}
