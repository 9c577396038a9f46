package discovery

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery/enginetest"
	"github.com/layerkeeper/layerkeeper/test/images"
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
