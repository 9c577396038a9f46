package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery/enginetest"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// Sizes the workload writes: a log in its writable layer, a file it deletes but keeps open for
// writing (counted by DeletedOpenBytes), and a lower-layer file it opens read-only and deletes
// (not counted: its blocks belong to the image).
const (
	workloadLogBytes     = 2 << 20
	workloadDeletedBytes = 3 << 20
	lowerFileBytes       = 1 << 20
)

var workloadArgs = []string{
	"-write", strconv.Itoa(workloadLogBytes), "-deleted", strconv.Itoa(workloadDeletedBytes),
	"-hold-lower", "/data/lower.bin", "-ready", "/ready",
}

// imageLayer fills dir with the image content every real test uses: the static workload at
// /app and a 1 MiB /data/lower.bin.
func imageLayer(t *testing.T, dir string) {
	t.Helper()
	enginetest.BuildWorkload(t, filepath.Join(dir, "app"))
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "lower.bin"), bytes.Repeat([]byte("L"), lowerFileBytes), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func writeTestFile(t *testing.T, p, content string) {
	t.Helper()
	mkdirs(t, filepath.Dir(p))
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mountOverlay really mounts an overlay at merged, from cwd (so options may use paths relative
// to it, as containerd and Docker do), and unmounts it when the test ends. It returns an
// unmount function for the test to call earlier.
func mountOverlay(t *testing.T, cwd, options, merged string) func() {
	t.Helper()
	cmd := exec.Command("mount", "-t", "overlay", "overlay", "-o", options, merged)
	cmd.Dir = cwd
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mount overlay at %s: %v\n%s", merged, err, out)
	}
	unmount := func() {
		if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			t.Errorf("unmount %s: %v", merged, err)
		}
	}
	t.Cleanup(unmount)
	return unmount
}

// bindMount bind-mounts src on dst (for the containers/storage self bind mount).
func bindMount(t *testing.T, src, dst string) {
	t.Helper()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s: %v", dst, err)
	}
	if err := unix.Mount("", dst, "", unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make %s private: %v", dst, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dst, unix.MNT_DETACH) })
}

// testCgroup creates a cgroup named name (below a directory for this test) in the cgroup v2
// hierarchy, or the first v1 one, and removes it when the test ends. It returns a function
// that moves a process into it.
func testCgroup(t *testing.T, name string) func(pid int) {
	t.Helper()
	base := cgroupBase(t)
	parent := filepath.Join(base, fmt.Sprintf("layerkeeper-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_")))
	dir := filepath.Join(parent, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		testenv.Unavailable(t, "a writable cgroup hierarchy (%v)", err)
	}
	t.Cleanup(func() {
		// The processes are gone (their cleanups ran first); the kernel may take a moment.
		deadline := time.Now().Add(5 * time.Second)
		for _, d := range []string{dir, parent} {
			for os.Remove(d) != nil && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
	return func(pid int) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatalf("moving %d into cgroup %s: %v", pid, dir, err)
		}
	}
}

func cgroupBase(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ms, _ := ParseMountInfo(f)
	var v1 string
	for _, m := range ms {
		if m.FSType == "cgroup2" {
			return m.MountPoint
		}
		if m.FSType == "cgroup" && v1 == "" {
			v1 = m.MountPoint
		}
	}
	if v1 == "" {
		testenv.Unavailable(t, "a cgroup filesystem")
	}
	return v1
}

// startProcess starts a process (in chroot when root is set) and kills it when the test ends.
// It returns the PID and a function that stops it (SIGTERM, then SIGKILL) and waits.
func startProcess(t *testing.T, root string, name string, args ...string) (int, func()) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if root != "" {
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		cmd.Dir = "/"
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() && out.Len() > 0 {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return cmd.Process.Pid, stop
}

// startWorkload runs the workload chrooted in merged, inside the cgroup, plus a stray process
// in the same cgroup whose root is the host's (it must not be taken for the container's),
// and waits until the workload has written everything.
func startWorkload(t *testing.T, merged, cgroupName string) (pid int, stop func()) {
	t.Helper()
	join := testCgroup(t, cgroupName)
	pid, stop = startProcess(t, merged, "/app", workloadArgs...)
	join(pid)
	stray, _ := startProcess(t, "", "sleep", "600")
	join(stray)
	enginetest.WaitFor(t, 20*time.Second, "the workload to be ready", func() bool {
		_, err := os.Stat(filepath.Join(merged, "ready"))
		return err == nil
	})
	return pid, stop
}

// findContainer discovers and returns the container with the given ID, failing on errors
// that concern it (errors about other containers on a shared machine are logged).
func findContainer(t *testing.T, opts Options, id string) (Container, bool) {
	t.Helper()
	cs, errs := Discover(context.Background(), opts)
	for _, err := range errs {
		if strings.Contains(err.Error(), id) {
			t.Errorf("Discover: %v", err)
		} else {
			t.Logf("Discover (unrelated): %v", err)
		}
	}
	for _, c := range cs {
		if c.ID == id {
			return c, true
		}
	}
	return Container{}, false
}

// deviceOf is the "major:minor" of the filesystem holding p.
func deviceOf(t *testing.T, p string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)))
}

// checkRunning checks what every layout must give for the running workload.
func checkRunning(t *testing.T, c Container, upper, merged string, pid int) {
	t.Helper()
	if !c.Running || c.UpperDir != upper || c.MergedDir != merged {
		t.Errorf("running container = %+v; want Running, UpperDir %s, MergedDir %s", c, upper, merged)
	}
	if want := deviceOf(t, merged); c.MountDevice != want {
		t.Errorf("MountDevice = %q, want %q (st_dev of the merged dir)", c.MountDevice, want)
	}
	if len(c.PIDs) != 1 || c.PIDs[0] != pid {
		t.Errorf("PIDs = %v, want [%d] (the stray process in the cgroup has the host's root)", c.PIDs, pid)
	}
	if fi, err := os.Stat(filepath.Join(c.UpperDirPath(), "var/log/app/app.log")); err != nil || fi.Size() < workloadLogBytes {
		t.Errorf("the workload's log in UpperDirPath %s: %v", c.UpperDirPath(), err)
	}
	root, err := ProcessRoot("/proc", pid)
	if err != nil || root.Device() != c.MountDevice {
		t.Errorf("ProcessRoot(%d) = %v, %v", pid, root, err)
	}
	got, err := DeletedOpenBytes("/proc", c.PIDs)
	if err != nil {
		t.Errorf("DeletedOpenBytes: %v", err)
	}
	if got < workloadDeletedBytes || got >= workloadDeletedBytes+lowerFileBytes {
		t.Errorf("DeletedOpenBytes = %d, want %d plus metadata blocks (the deleted lower file, held read-only, excluded)", got, workloadDeletedBytes)
	}
	fss, errs := StatFilesystems([]Container{c})
	if len(errs) > 0 || len(fss) != 1 || fss[0].Device != deviceOf(t, upper) || fss[0].AvailableBytes <= 0 {
		t.Errorf("StatFilesystems = %+v, %v", fss, errs)
	} else if rel, err := filepath.Rel(fss[0].Path, upper); err != nil || strings.HasPrefix(rel, "..") {
		t.Errorf("filesystem path %s does not contain %s", fss[0].Path, upper)
	}
}

func TestRealOverlayContainerd(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	state, root := filepath.Join(dir, "run/containerd"), filepath.Join(dir, "var/lib/containerd")
	snaps := filepath.Join(root, "io.containerd.snapshotter.v1.overlayfs/snapshots")
	id := hexID("real-containerd-" + dir)
	bundle := filepath.Join(state, "io.containerd.runtime.v2.task/k8s.io", id)
	merged := filepath.Join(bundle, "rootfs")
	mkdirs(t, filepath.Join(snaps, "1/fs"), filepath.Join(snaps, "2/fs/etc"), filepath.Join(snaps, "3/fs"), filepath.Join(snaps, "3/work"), merged)
	imageLayer(t, filepath.Join(snaps, "1/fs"))
	ann := criAnnotations(false, "web-0", "shop", "uid-1", "nginx")
	writeTestFile(t, filepath.Join(bundle, "config.json"), mustJSON(t, map[string]any{"ociVersion": "1.0.2", "annotations": ann}))

	// containerd's long-options form: lowerdirs relative to the snapshots directory.
	upper := filepath.Join(snaps, "3/fs")
	unmount := mountOverlay(t, snaps, "lowerdir=2/fs:1/fs,upperdir="+upper+",workdir="+filepath.Join(snaps, "3/work"), merged)
	pid, stop := startWorkload(t, merged, "cri-containerd-"+id+".scope")
	writeTestFile(t, filepath.Join(bundle, "init.pid"), strconv.Itoa(pid))

	opts := Options{Runtimes: []v1alpha1.Runtime{v1alpha1.RuntimeContainerd}}
	c, ok := findContainer(t, opts, id)
	if !ok {
		t.Fatalf("container %s not discovered from the real mount table", id)
	}
	checkRunning(t, c, upper, merged, pid)
	if c.Pod != "web-0" || c.Namespace != "shop" || c.PodUID != "uid-1" || c.Name != "nginx" || c.Sandbox ||
		c.EngineNamespace != "k8s.io" || c.EngineRoot != state || c.StorageID != "3" {
		t.Errorf("identity = %+v", c)
	}

	// Task deleted: the snapshot stays on disk but nothing on disk maps it to the container.
	stop()
	unmount()
	if c, ok := findContainer(t, opts, id); ok {
		t.Errorf("stopped containerd container found: %+v (only containerd's API can know it)", c)
	}
}

func TestRealOverlayDocker(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "docker")
	home := filepath.Join(root, "overlay2")
	id, mountID, imageID := hexID("real-docker-"+dir), hexID("real-docker-mount-"+dir), hexID("real-docker-image")
	merged := filepath.Join(home, mountID, "merged")
	mkdirs(t, filepath.Join(home, "l"), filepath.Join(home, imageID, "diff"), filepath.Join(home, mountID+"-init", "diff/etc"),
		filepath.Join(home, mountID, "diff"), filepath.Join(home, mountID, "work"), merged)
	imageLayer(t, filepath.Join(home, imageID, "diff"))
	for short, target := range map[string]string{"IMAGE": imageID, "INIT": mountID + "-init"} {
		if err := os.Symlink("../"+target+"/diff", filepath.Join(home, "l", short)); err != nil {
			t.Fatal(err)
		}
	}
	writeTestFile(t, filepath.Join(root, "image/overlay2/layerdb/mounts", id, "mount-id"), mountID)
	labels := criDockerLabels(false, "api-1", "prod", "uid-2", "api")

	// Docker's long-options form: mounted from the driver home, upperdir relative.
	unmount := mountOverlay(t, home, "lowerdir=l/INIT:l/IMAGE,upperdir="+mountID+"/diff,workdir="+mountID+"/work", merged)
	pid, stop := startWorkload(t, merged, "docker-"+id+".scope")
	writeConfig := func(running bool, pid int) {
		writeTestFile(t, filepath.Join(root, "containers", id, "config.v2.json"), mustJSON(t, map[string]any{
			"ID": id, "Name": "/k8s_api_api-1_prod_uid-2_0", "Driver": "overlay2",
			"State":  map[string]any{"Running": running, "Pid": pid},
			"Config": map[string]any{"Labels": labels},
		}))
	}
	writeConfig(true, pid)

	opts := Options{Runtimes: []v1alpha1.Runtime{v1alpha1.RuntimeDocker}}
	c, ok := findContainer(t, opts, id)
	if !ok {
		t.Fatalf("container %s not discovered from the real mount table", id)
	}
	upper := filepath.Join(home, mountID, "diff")
	checkRunning(t, c, upper, merged, pid)
	if c.Pod != "api-1" || c.Namespace != "prod" || c.PodUID != "uid-2" || c.Name != "api" || c.EngineRoot != root || c.StorageID != mountID {
		t.Errorf("identity = %+v", c)
	}

	// Stopped: the mount is gone, the layer stays and is still found (the root no longer
	// shows in the mount table, so it is given).
	stop()
	unmount()
	writeConfig(false, 0)
	opts.DockerRoot = root
	c, ok = findContainer(t, opts, id)
	if !ok || c.Running || c.UpperDir != upper || c.MergedDir != "" || len(c.PIDs) != 0 || c.Name != "api" {
		t.Errorf("stopped container = %+v, %v", c, ok)
	}
}

func TestRealOverlayContainersStorageThroughProcRootLink(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	root, runroot := filepath.Join(dir, "storage"), filepath.Join(dir, "run-storage")
	home := filepath.Join(root, "overlay")
	id, layer, imageLayerID := hexID("real-cs-"+dir), hexID("real-cs-layer-"+dir), hexID("real-cs-image")
	merged := filepath.Join(home, layer, "merged")
	mkdirs(t, filepath.Join(home, "l"), filepath.Join(home, imageLayerID, "diff"), filepath.Join(home, layer, "diff"),
		filepath.Join(home, layer, "work"), merged, filepath.Join(root, "overlay-images"), filepath.Join(runroot, "overlay-containers"))
	imageLayer(t, filepath.Join(home, imageLayerID, "diff"))
	if err := os.Symlink("../"+imageLayerID+"/diff", filepath.Join(home, "l", "IMAGE")); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(root, "overlay-containers/volatile-containers.json"), mustJSON(t, []map[string]any{{
		"id": id, "names": []string{"k8s_db_db-0_data_uid-3_0"}, "layer": layer,
		"metadata": `{"pod-name":"db-0","metadata-name":"db"}`,
	}}))
	ann := crioAnnotations(false, "db-0", "data", "uid-3", "db")
	writeTestFile(t, filepath.Join(runroot, "overlay-containers", id, "userdata/config.json"), mustJSON(t, map[string]any{"annotations": ann}))

	// The graph driver's self bind mount of <root>/overlay, then the container's rootfs.
	bindMount(t, home, home)
	unmount := mountOverlay(t, "/", "lowerdir="+filepath.Join(home, "l/IMAGE")+",upperdir="+filepath.Join(home, layer, "diff")+
		",workdir="+filepath.Join(home, layer, "work"), merged)
	pid, stop := startWorkload(t, merged, "crio-"+id+".scope")
	writeTestFile(t, filepath.Join(runroot, "overlay-containers", id, "userdata/pidfile"), strconv.Itoa(pid))

	// Read the host through a /proc/<pid>/root magic link, as a hostPID agent without a host
	// mount does with /proc/1/root (PID 1 may be out of reach in a test sandbox; this process's
	// root is the host's too).
	opts := Options{HostRoot: "/proc/self/root", Runtimes: []v1alpha1.Runtime{v1alpha1.RuntimeContainersStorage}, StorageRunRoot: runroot}
	c, ok := findContainer(t, opts, id)
	if !ok {
		t.Fatalf("container %s not discovered from the real mount table", id)
	}
	upper := filepath.Join(home, layer, "diff")
	checkRunning(t, c, upper, merged, pid)
	if c.Pod != "db-0" || c.Namespace != "data" || c.PodUID != "uid-3" || c.Name != "db" || c.EngineRoot != root || c.StorageID != layer {
		t.Errorf("identity = %+v", c)
	}
	if c.UpperDirPath() != "/proc/self/root"+upper {
		t.Errorf("UpperDirPath = %q", c.UpperDirPath())
	}

	stop()
	unmount()
	opts.StorageRoot = root
	c, ok = findContainer(t, opts, id)
	if !ok || c.Running || c.UpperDir != upper || len(c.PIDs) != 0 || c.Name != "db" {
		t.Errorf("stopped container = %+v, %v", c, ok)
	}
}

// TestDeletedOpenBytesOnlyRootDevice checks, on this test process (whose root is the host's
// /), that a deleted file held for writing on the root filesystem is counted and one on
// another filesystem (a tmpfs) is not.
func TestDeletedOpenBytesOnlyRootDevice(t *testing.T) {
	testenv.RequireRoot(t)
	hold := func(dir string) {
		f, err := os.CreateTemp(dir, "held")
		if err != nil {
			testenv.Unavailable(t, "a writable %s (%v)", dir, err)
		}
		t.Cleanup(func() { f.Close() })
		if _, err := f.Write(bytes.Repeat([]byte("x"), 1<<20)); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(f.Name()); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if deviceOf(t, dir) != deviceOf(t, "/") {
		testenv.Unavailable(t, "a temporary directory on the root filesystem")
	}
	hold(dir)
	if deviceOf(t, "/dev/shm") == deviceOf(t, "/") {
		testenv.Unavailable(t, "a /dev/shm on its own filesystem")
	}
	hold("/dev/shm")
	got, err := DeletedOpenBytes("/proc", []int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if got < 1<<20 || got >= 2<<20 {
		t.Errorf("DeletedOpenBytes = %d, want the 1 MiB on the root filesystem only", got)
	}
	if n, err := DeletedOpenBytes("/proc", []int{1 << 22}); n != 0 || err != nil {
		t.Errorf("DeletedOpenBytes(no such process) = %d, %v", n, err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
