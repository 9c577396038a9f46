package discovery

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery/enginetest"
	"github.com/layerkeeper/layerkeeper/nodeagent/scanner"
	ctdengine "github.com/layerkeeper/layerkeeper/test/engines/containerd"
	"github.com/layerkeeper/layerkeeper/test/host"
	"github.com/layerkeeper/layerkeeper/test/images"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

const workloadImage = "localhost/layerkeeper-workload:test"

// workloadArchive writes the workload image (/app, /data/lower.bin) as a docker-archive.
func workloadArchive(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	enginetest.BuildWorkload(t, filepath.Join(dir, "app"))
	bin, err := os.ReadFile(filepath.Join(dir, "app"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "image.tar")
	err = images.WriteDockerArchiveFile(p, images.Image{
		RepoTag: workloadImage,
		Files: map[string]images.ImageFile{
			"/app":            {Mode: 0o755, Content: bin},
			"/data/lower.bin": {Content: bytes.Repeat([]byte("L"), lowerFileBytes)},
		},
		Dirs:       []string{"/etc", "/tmp", "/var/log"},
		Entrypoint: []string{"/app"},
		Cmd:        workloadArgs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// inspected is what an engine's inspect says about a container.
type inspected struct {
	upper, merged string
	pid, conmon   int
}

func parseInspect(t *testing.T, out string) inspected {
	t.Helper()
	f := strings.Split(out, "|")
	if len(f) != 4 {
		t.Fatalf("inspect output %q", out)
	}
	pid, _ := strconv.Atoi(f[2])
	conmon, _ := strconv.Atoi(f[3])
	return inspected{upper: f[0], merged: f[1], pid: pid, conmon: conmon}
}

// upperBytes sums the sizes of the regular files in an upper directory.
func upperBytes(t *testing.T, p string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Errorf("walking %s: %v", p, err)
	}
	return n
}

// checkEngineRunning checks a running container against what its engine reports.
func checkEngineRunning(t *testing.T, c Container, in inspected) {
	t.Helper()
	if !c.Running || c.UpperDir != in.upper || c.MergedDir != in.merged {
		t.Errorf("container = %+v\nwant Running, UpperDir %s, MergedDir %s (from inspect)", c, in.upper, in.merged)
	}
	if len(c.PIDs) != 1 || c.PIDs[0] != in.pid {
		t.Errorf("PIDs = %v, want [%d] (inspect's State.Pid; conmon %d excluded)", c.PIDs, in.pid, in.conmon)
	}
	if n := upperBytes(t, c.UpperDirPath()); n < workloadLogBytes {
		t.Errorf("upper directory holds %d bytes, want at least the %d-byte log", n, workloadLogBytes)
	}
	if n, err := DeletedOpenBytes("/proc", c.PIDs); err != nil || n < workloadDeletedBytes || n >= workloadDeletedBytes+lowerFileBytes {
		t.Errorf("DeletedOpenBytes = %d, %v; want %d plus metadata", n, err, workloadDeletedBytes)
	}
}

// checkEngineStopped checks a stopped container: still found, same layer, not running.
func checkEngineStopped(t *testing.T, c Container, ok bool, upper string) {
	t.Helper()
	if !ok {
		t.Fatal("stopped container not discovered")
	}
	if c.Running || c.UpperDir != upper || c.MergedDir != "" || len(c.PIDs) != 0 {
		t.Errorf("stopped container = %+v, want not running with UpperDir %s", c, upper)
	}
	if n := upperBytes(t, c.UpperDirPath()); n < workloadLogBytes {
		t.Errorf("stopped container's upper directory holds %d bytes, want at least %d", n, workloadLogBytes)
	}
}

func TestEngineDocker(t *testing.T) {
	d := enginetest.StartDocker(t)
	d.MustRun("load", "-i", workloadArchive(t))

	plain := d.MustRun("run", "-d", "--name", "lk-plain", "--network", "none", "--label", "team=storage", workloadImage)
	uid := "3c6e0f5a-8d2b-4f71-a9e4-5b0c7d2e1f90"
	kube := d.MustRun("run", "-d", "--name", "k8s_api_api-1_prod_"+uid+"_0", "--network", "none",
		"--label", labelPodName+"=api-1", "--label", labelPodNamespace+"=prod", "--label", labelPodUID+"="+uid,
		"--label", labelContainerName+"=api", "--label", dockerTypeLabel+"=container", workloadImage)
	inspect := func(id string) inspected {
		return parseInspect(t, d.MustRun("inspect", "-f", "{{.GraphDriver.Data.UpperDir}}|{{.GraphDriver.Data.MergedDir}}|{{.State.Pid}}|0", id))
	}
	ins := map[string]inspected{plain: inspect(plain), kube: inspect(kube)}
	for id, in := range ins {
		enginetest.WaitFor(t, 30*time.Second, "container "+id+" ready", func() bool {
			_, err := os.Stat(filepath.Join(in.upper, "ready"))
			return err == nil
		})
	}

	// Discovery learns the data root from the mount table (dockerd bind-mounts it onto itself
	// and mounts each rootfs below it): no root is configured.
	opts := Options{Runtimes: []v1alpha1.Runtime{v1alpha1.RuntimeDocker}}
	c, ok := findContainer(t, opts, plain)
	if !ok {
		t.Fatalf("running container %s not discovered", plain)
	}
	checkEngineRunning(t, c, ins[plain])
	if c.Name != "lk-plain" || c.Labels["team"] != "storage" || c.Pod != "" || c.EngineRoot != d.DataRoot || K8sContainerID(c) != "docker://"+plain {
		t.Errorf("plain container identity = %+v", c)
	}
	c, ok = findContainer(t, opts, kube)
	if !ok {
		t.Fatalf("running container %s not discovered", kube)
	}
	checkEngineRunning(t, c, ins[kube])
	if c.Name != "api" || c.Pod != "api-1" || c.Namespace != "prod" || c.PodUID != uid || c.Sandbox {
		t.Errorf("Kubernetes container identity = %+v", c)
	}

	d.MustRun("stop", "-t", "10", plain, kube)
	for _, id := range []string{plain, kube} {
		c, ok := findContainer(t, opts, id)
		checkEngineStopped(t, c, ok, ins[id].upper)
	}

	d.MustRun("rm", plain)
	if c, ok := findContainer(t, opts, plain); ok {
		t.Errorf("removed container still discovered: %+v", c)
	}
}

func TestEnginePodman(t *testing.T) {
	p := enginetest.NewPodman(t)
	p.MustRun("load", "-i", workloadArchive(t))
	id := p.MustRun("run", "-d", "--name", "lk-web", "--network", "host",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--label", "team=storage", workloadImage)
	in := parseInspect(t, p.MustRun("inspect", "-f",
		"{{.GraphDriver.Data.UpperDir}}|{{.GraphDriver.Data.MergedDir}}|{{.State.Pid}}|{{.State.ConmonPid}}", id))
	enginetest.WaitFor(t, 30*time.Second, "container ready", func() bool {
		_, err := os.Stat(filepath.Join(in.upper, "ready"))
		return err == nil
	})

	// The graph root comes from the mount table, the run root (pid file) from the container's
	// config.json: no root is configured.
	opts := Options{Runtimes: []v1alpha1.Runtime{v1alpha1.RuntimeContainersStorage}}
	c, ok := findContainer(t, opts, id)
	if !ok {
		t.Fatalf("running container %s not discovered", id)
	}
	checkEngineRunning(t, c, in)
	if c.Name != "lk-web" || c.Pod != "" || c.Sandbox || c.Annotations["io.container.manager"] != "libpod" || c.EngineRoot != p.Root {
		t.Errorf("identity = %+v", c)
	}

	// Stopped, nothing is mounted any more: the graph root must be given.
	p.MustRun("stop", "-t", "10", id)
	opts.StorageRoot = p.Root
	c, ok = findContainer(t, opts, id)
	checkEngineStopped(t, c, ok, in.upper)
	if c.Name != "lk-web" {
		t.Errorf("stopped container's Name = %q", c.Name)
	}

	p.MustRun("rm", id)
	if c, ok := findContainer(t, opts, id); ok {
		t.Errorf("removed container still discovered: %+v", c)
	}
}

// TestEngineContainerdStopped runs a pod through containerd's CRI plugin as the kubelet does,
// lets its container write and stops it: containerd deletes the task and unmounts the root
// filesystem but keeps the container record and its snapshot, as for the previous instance of
// a crash-looping container until the kubelet's GC. Discovery finds it through containerd's
// socket, not running, with its CRI identity and upper directory, also through a read-only
// bind of the host (as the agent's DaemonSet sees it); once removed it is gone. A socket
// nobody listens on is an error, and the running sandbox is still found.
func TestEngineContainerdStopped(t *testing.T) {
	testenv.RequireBinary(t, "du")
	c := ctdengine.Start(t)
	c.ImportImage(t, workloadArchive(t))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	pod := ctdengine.Pod{Name: "api-7d9f8b6c5-x2k4p", Namespace: "prod", UID: "3c6e0f5a-8d2b-4f71-a9e4-5b0c7d2e1f90"}
	podID, err := c.RunPodSandbox(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.CreateContainer(ctx, podID, pod, ctdengine.Container{Name: "api", Image: workloadImage})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	opts := Options{Runtimes: []v1alpha1.Runtime{v1alpha1.RuntimeContainerd}, ContainerdState: c.State, ContainerdSocket: c.Socket}
	var running Container
	enginetest.WaitFor(t, 30*time.Second, "the container's ready file", func() bool {
		var ok bool
		running, ok = findContainer(t, opts, id)
		if !ok {
			return false
		}
		_, err := os.Stat(filepath.Join(running.UpperDirPath(), "ready"))
		return err == nil
	})
	if !running.Running || running.EngineRoot != c.State || running.Name != "api" || len(running.PIDs) == 0 {
		t.Fatalf("running container = %+v", running)
	}
	if n := countID(t, opts, id); n != 1 {
		t.Errorf("running container listed %d times, want once (the mount table's entry only)", n)
	}

	if err := c.StopContainer(ctx, id, 10); err != nil {
		t.Fatal(err)
	}
	if st, err := c.ContainerStatus(ctx, id); err != nil || st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Fatalf("after StopContainer: %v, %v", st.GetState(), err)
	}
	if _, err := os.Stat(filepath.Join(c.State, "io.containerd.runtime.v2.task", ctdengine.Namespace, id)); !os.IsNotExist(err) {
		t.Errorf("task bundle still present after the stop (%v): the task was not deleted", err)
	}

	checkStopped := func(t *testing.T, opts Options) {
		t.Helper()
		got, ok := findContainer(t, opts, id)
		if !ok {
			t.Fatalf("stopped container %s not discovered", id)
		}
		want := Container{Runtime: v1alpha1.RuntimeContainerd, ID: id, Namespace: pod.Namespace, Pod: pod.Name, PodUID: pod.UID,
			Name: "api", EngineNamespace: ctdengine.Namespace, EngineRoot: c.Socket, StorageID: running.StorageID,
			UpperDir: running.UpperDir, HostRoot: opts.HostRoot}
		if want.HostRoot == "" {
			want.HostRoot = "/"
		}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Container{}, "Labels")); diff != "" {
			t.Errorf("stopped container (-want +got):\n%s", diff)
		}
		if got.Labels[criKindLabel] != "container" || got.Labels[labelContainerName] != "api" {
			t.Errorf("labels = %v, want the CRI plugin's and the kubelet's", got.Labels)
		}
		if n := countID(t, opts, id); n != 1 {
			t.Errorf("stopped container listed %d times", n)
		}
		u, err := scanner.Scan(context.Background(), got.UpperDirPath(), scanner.Options{})
		if err != nil {
			t.Fatal(err)
		}
		du := duBytes(t, got.UpperDirPath())
		t.Logf("stopped %s: upper %s, scanned %d bytes, du -sB1 %d, %d inodes", id[:12], got.UpperDirPath(), u.Bytes, du, u.Inodes)
		if u.Bytes != du || u.Bytes < workloadLogBytes {
			t.Errorf("scanned %d bytes, du -sB1 says %d; the workload wrote a %d-byte log", u.Bytes, du, workloadLogBytes)
		}
		if n, err := DeletedOpenBytes("/proc", got.PIDs); n != 0 || err != nil {
			t.Errorf("DeletedOpenBytes of a stopped container = %d, %v", n, err)
		}
	}
	t.Run("stopped", func(t *testing.T) {
		checkStopped(t, opts)
		// What containerd's API adds to a discovery pass (one dial, four kinds of calls).
		off := opts
		off.NoContainerdSocket = true
		var with, without time.Duration
		for range 5 {
			start := time.Now()
			Discover(ctx, opts)
			with += time.Since(start)
			start = time.Now()
			Discover(ctx, off)
			without += time.Since(start)
		}
		t.Logf("a discovery pass takes %v with containerd's API, %v without (mean of 5)", with/5, without/5)
	})

	// The agent's view: the node's / read-only under a host root. Here only the harness's
	// directory is bind-mounted there read-only (with the host's /proc as HostProc); the socket
	// is reached through the read-only mount.
	t.Run("through a read-only host root", func(t *testing.T) {
		hostRoot := roBind(t, c.Dir)
		if err := os.WriteFile(filepath.Join(hostRoot, c.Dir, "probe"), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Fatalf("writing through the bind: %v, want EROFS", err)
		}
		o := opts
		o.HostRoot, o.HostProc = hostRoot, "/proc"
		checkStopped(t, o)
	})

	t.Run("unreachable socket", func(t *testing.T) {
		stale := filepath.Join(c.Dir, "stale.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
		o := opts
		o.ContainerdSocket = stale
		cs, errs := Discover(ctx, o)
		if !slices.ContainsFunc(errs, func(e error) bool { return strings.Contains(e.Error(), stale) }) {
			t.Errorf("errors = %v, want one naming %s", errs, stale)
		}
		if !slices.ContainsFunc(cs, func(c Container) bool { return c.ID == podID && c.Running && c.Sandbox }) ||
			slices.ContainsFunc(cs, func(c Container) bool { return c.ID == id }) {
			t.Errorf("found %+v; want the running sandbox (mount table) and not the stopped container", cs)
		}
	})

	// The pod stopped: its sandbox is reported stopped too, as a sandbox. With nothing of this
	// containerd running any more, the mount table no longer shows its snapshotter root (not
	// the default one): the snapshots are refused, with an error naming each container and
	// the flag, until the root is given.
	t.Run("stopped sandbox", func(t *testing.T) {
		if _, err := c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatal(err)
		}
		cs, errs := Discover(ctx, opts)
		if slices.ContainsFunc(cs, func(c Container) bool { return c.ID == podID || c.ID == id }) {
			t.Errorf("containers reported under an unknown snapshotter root: %+v", cs)
		}
		for _, want := range []string{podID, id} {
			if !slices.ContainsFunc(errs, func(e error) bool {
				return strings.Contains(e.Error(), want) && strings.Contains(e.Error(), "--containerd-root")
			}) {
				t.Errorf("no error names %s and --containerd-root: %v", want, errs)
			}
		}
		o := opts
		o.ContainerdRoot = c.Root
		sb, ok := findContainer(t, o, podID)
		if !ok || sb.Running || !sb.Sandbox || sb.Name != "POD" || sb.Pod != pod.Name || sb.Namespace != pod.Namespace || sb.PodUID != pod.UID {
			t.Errorf("stopped sandbox = %+v (found %v)", sb, ok)
		}
		if _, ok := findContainer(t, o, id); !ok {
			t.Errorf("stopped container %s not found with its containerd root given", id)
		}
		opts = o
	})

	if err := c.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, ok := findContainer(t, opts, id); ok {
		t.Errorf("removed container still discovered: %+v", got)
	}
}

// countID counts the discovered containers with the given ID.
func countID(t *testing.T, opts Options, id string) int {
	t.Helper()
	cs, _ := Discover(context.Background(), opts)
	n := 0
	for _, c := range cs {
		if c.ID == id {
			n++
		}
	}
	return n
}

// roBind bind-mounts dir read-only at the same path under a new scratch host root, removed
// (and unmounted) after the test, and returns the host root.
func roBind(t *testing.T, dir string) string {
	t.Helper()
	root, err := os.MkdirTemp("", "lkhr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := host.UnmountUnder(root); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := os.RemoveAll(root); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	target := filepath.Join(root, dir)
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dir, target, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	return root
}

// duBytes is `du -sB1 p`.
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
