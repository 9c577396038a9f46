package discovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// hexID is a deterministic 64-hex-digit ID, like the engines' container and layer IDs.
func hexID(seed string) string {
	s := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(s[:])
}

// hostFixture is a fake host under a temporary directory: files at host paths, a mount table
// for PID 1 and fake processes (cgroup and mountinfo files) under <root>/proc.
type hostFixture struct {
	t      *testing.T
	root   string
	mounts []Mount
	nextID int
	minor  uint32
}

func newHost(t *testing.T) *hostFixture {
	t.Helper()
	h := &hostFixture{t: t, root: t.TempDir(), nextID: 100, minor: 100}
	h.mounts = append(h.mounts,
		Mount{ID: 26, ParentID: 1, Major: 254, Minor: 0, Root: "/", MountPoint: "/", MountOptions: "rw,relatime",
			FSType: "ext4", Source: "/dev/vda", SuperOptions: []MountOption{{"rw", ""}}},
		Mount{ID: 21, ParentID: 26, Major: 0, Minor: 20, Root: "/", MountPoint: "/proc", MountOptions: "rw",
			FSType: "proc", Source: "proc", SuperOptions: []MountOption{{"rw", ""}}},
	)
	return h
}

// path is where the host path p is in the fixture.
func (h *hostFixture) path(p string) string { return filepath.Join(h.root, p) }

func (h *hostFixture) mkdir(p string) {
	h.t.Helper()
	if err := os.MkdirAll(h.path(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hostFixture) write(p, content string) {
	h.t.Helper()
	h.mkdir(filepath.Dir(p))
	if err := os.WriteFile(h.path(p), []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hostFixture) writeJSON(p string, v any) {
	h.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	h.write(p, string(b))
}

func (h *hostFixture) symlink(target, p string) {
	h.t.Helper()
	h.mkdir(filepath.Dir(p))
	if err := os.Symlink(target, h.path(p)); err != nil {
		h.t.Fatal(err)
	}
}

// overlay adds an overlay mount at mountPoint and returns it. Options follow the kernel's
// order with a uuid=on after workdir, as recent kernels show.
func (h *hostFixture) overlay(mountPoint string, lower []string, upper, work string) Mount {
	h.nextID++
	h.minor++
	m := Mount{ID: h.nextID, ParentID: 26, Major: 0, Minor: h.minor, Root: "/", MountPoint: mountPoint,
		MountOptions: "rw,relatime", FSType: "overlay", Source: "overlay",
		SuperOptions: []MountOption{{"rw", ""}, {"lowerdir", strings.Join(lower, ":")},
			{"upperdir", upper}, {"workdir", work}, {"uuid", "on"}}}
	h.mounts = append(h.mounts, m)
	return m
}

// bind adds a bind mount of the root filesystem's directory src at mountPoint.
func (h *hostFixture) bind(src, mountPoint string) {
	h.nextID++
	h.mounts = append(h.mounts, Mount{ID: h.nextID, ParentID: 26, Major: 254, Minor: 0, Root: src, MountPoint: mountPoint,
		MountOptions: "rw,relatime", OptionalFields: []string{"shared:1"}, FSType: "ext4", Source: "/dev/vda",
		SuperOptions: []MountOption{{"rw", ""}, {"discard", ""}}})
}

// tmpfs adds a tmpfs mount (e.g. a container's /dev/shm) at mountPoint.
func (h *hostFixture) tmpfs(mountPoint string) {
	h.nextID++
	h.minor++
	h.mounts = append(h.mounts, Mount{ID: h.nextID, ParentID: 26, Major: 0, Minor: h.minor, Root: "/", MountPoint: mountPoint,
		MountOptions: "rw,nosuid,nodev,noexec,relatime", FSType: "tmpfs", Source: "shm",
		SuperOptions: []MountOption{{"rw", ""}, {"size", "65536k"}}})
}

// process adds a fake process: its cgroup file and a mountinfo whose "/" is root.
func (h *hostFixture) process(pid int, cgroup string, root Mount) {
	h.t.Helper()
	root.MountPoint = "/"
	proc := Mount{ID: 900, ParentID: root.ID, Major: 0, Minor: 99, Root: "/", MountPoint: "/proc", MountOptions: "rw",
		FSType: "proc", Source: "proc", SuperOptions: []MountOption{{"rw", ""}}}
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	h.write(filepath.Join(dir, "cgroup"), cgroup)
	h.write(filepath.Join(dir, "mountinfo"), root.String()+"\n"+proc.String()+"\n")
}

// hostRootMount is the host's / mount, for fake processes that are not in a container.
func (h *hostFixture) hostRootMount() Mount { return h.mounts[0] }

func (h *hostFixture) writeMountInfo(extra ...string) {
	h.t.Helper()
	var b strings.Builder
	for _, m := range h.mounts {
		b.WriteString(m.String() + "\n")
	}
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	h.write("/proc/1/mountinfo", b.String())
	h.write("/proc/1/cgroup", "0::/init.scope\n")
}

func (h *hostFixture) discover(opts Options) ([]Container, []error) {
	h.t.Helper()
	h.writeMountInfo()
	opts.HostRoot = h.root
	return Discover(context.Background(), opts)
}

// --- containerd (CRI, overlayfs snapshotter) ---

type containerdFixture struct {
	h     *hostFixture
	root  string // /var/lib/containerd
	state string // /run/containerd
	snap  int
}

func (h *hostFixture) containerd(root, state string) *containerdFixture {
	return &containerdFixture{h: h, root: root, state: state, snap: 10}
}

func (c *containerdFixture) snapshots() string {
	return filepath.Join(c.root, "io.containerd.snapshotter.v1.overlayfs", "snapshots")
}

// snapshot creates snapshot N's fs and work directories and returns fs.
func (c *containerdFixture) snapshot() (n int, fs string) {
	c.snap++
	fs = filepath.Join(c.snapshots(), strconv.Itoa(c.snap), "fs")
	c.h.mkdir(fs)
	c.h.mkdir(filepath.Join(c.snapshots(), strconv.Itoa(c.snap), "work"))
	return c.snap, fs
}

// bundle writes a task bundle (config.json with annotations, init.pid) and returns its path.
func (c *containerdFixture) bundle(ns, id string, annotations map[string]string, pid int) string {
	b := filepath.Join(c.state, "io.containerd.runtime.v2.task", ns, id)
	c.h.mkdir(filepath.Join(b, "rootfs"))
	c.h.writeJSON(filepath.Join(b, "config.json"), map[string]any{"ociVersion": "1.0.2", "annotations": annotations})
	if pid > 0 {
		c.h.write(filepath.Join(b, "init.pid"), strconv.Itoa(pid))
	}
	return b
}

// running creates a container whose snapshot is mounted on its bundle's rootfs, with
// lowerdirs relative to the snapshots directory (containerd's long-options form) when
// relativeLower is set.
func (c *containerdFixture) running(ns, id string, annotations map[string]string, pid int, relativeLower bool) (Mount, string, string) {
	n, upper := c.snapshot()
	b := c.bundle(ns, id, annotations, pid)
	lower := []string{filepath.Join(c.snapshots(), "2", "fs"), filepath.Join(c.snapshots(), "1", "fs")}
	if relativeLower {
		lower = []string{"2/fs", "1/fs"}
	}
	m := c.h.overlay(filepath.Join(b, "rootfs"), lower, upper, filepath.Join(c.snapshots(), strconv.Itoa(n), "work"))
	return m, upper, strconv.Itoa(n)
}

func criAnnotations(sandbox bool, pod, ns, uid, name string) map[string]string {
	a := map[string]string{
		criSandboxName: pod, criSandboxNamespace: ns, criSandboxUID: uid,
		"io.kubernetes.cri.sandbox-id": hexID("sandbox/" + pod),
	}
	if sandbox {
		a[criContainerType] = "sandbox"
		a["io.kubernetes.cri.sandbox-log-directory"] = "/var/log/pods/" + ns + "_" + pod + "_" + uid
	} else {
		a[criContainerType] = "container"
		a[criContainerName] = name
		a["io.kubernetes.cri.image-name"] = "docker.io/library/app:1"
	}
	return a
}

// --- Docker overlay2 ---

type dockerFixture struct {
	h    *hostFixture
	root string
}

func (h *hostFixture) docker(root string) *dockerFixture {
	h.mkdir(filepath.Join(root, "overlay2", "l"))
	h.mkdir(filepath.Join(root, "image", "overlay2", "layerdb", "mounts"))
	h.mkdir(filepath.Join(root, "containers"))
	return &dockerFixture{h: h, root: root}
}

type dockerState struct {
	Running bool
	Pid     int
}

// container writes a container's layer (<mountID>/{diff,work,merged,link,lower} and its -init
// sibling), layerdb entry and config.v2.json. config may be nil (no file) or a string (raw).
func (d *dockerFixture) container(id, mountID, name string, labels map[string]string, st dockerState, config any) string {
	home := filepath.Join(d.root, "overlay2")
	for _, dir := range []string{"diff", "work", "merged"} {
		d.h.mkdir(filepath.Join(home, mountID, dir))
		d.h.mkdir(filepath.Join(home, mountID+"-init", dir))
	}
	d.h.write(filepath.Join(home, mountID, "link"), "SHORT"+mountID[:8])
	d.h.write(filepath.Join(home, mountID, "lower"), "l/INIT"+mountID[:8]+":l/IMAGE0001")
	mdir := filepath.Join(d.root, "image", "overlay2", "layerdb", "mounts", id)
	d.h.write(filepath.Join(mdir, "mount-id"), mountID) // no trailing newline, as Docker writes it
	d.h.write(filepath.Join(mdir, "init-id"), mountID+"-init")
	d.h.write(filepath.Join(mdir, "parent"), "sha256:"+hexID("image"))
	cfgPath := filepath.Join(d.root, "containers", id, "config.v2.json")
	switch cfg := config.(type) {
	case nil:
		d.h.writeJSON(cfgPath, map[string]any{
			"ID": id, "Name": "/" + name, "Driver": "overlay2",
			"State":  map[string]any{"Running": st.Running, "Paused": false, "Pid": st.Pid, "ExitCode": 0},
			"Config": map[string]any{"Hostname": id[:12], "Labels": labels, "Image": "app:1"},
		})
	case string:
		d.h.write(cfgPath, cfg)
	}
	return filepath.Join(home, mountID, "diff")
}

// mount mounts a container's layer; relative uses Docker's long-options form (mounted from
// the driver home: lowerdir=l/..., upperdir=<id>/diff).
func (d *dockerFixture) mount(mountID string, relative bool) Mount {
	home := filepath.Join(d.root, "overlay2")
	if relative {
		return d.h.overlay(filepath.Join(home, mountID, "merged"),
			[]string{"l/INIT" + mountID[:8], "l/IMAGE0001"}, mountID+"/diff", mountID+"/work")
	}
	return d.h.overlay(filepath.Join(home, mountID, "merged"),
		[]string{filepath.Join(home, "l", "INIT"+mountID[:8]), filepath.Join(home, "l", "IMAGE0001")},
		filepath.Join(home, mountID, "diff"), filepath.Join(home, mountID, "work"))
}

func criDockerLabels(sandbox bool, pod, ns, uid, name string) map[string]string {
	l := map[string]string{labelPodName: pod, labelPodNamespace: ns, labelPodUID: uid}
	if sandbox {
		l[dockerTypeLabel] = dockerTypeSandbox
		l[labelContainerName] = "POD"
	} else {
		l[dockerTypeLabel] = "container"
		l[labelContainerName] = name
	}
	return l
}

// --- containers/storage overlay (CRI-O, podman) ---

type storageFixture struct {
	h       *hostFixture
	root    string
	runroot string
	lists   map[string][]map[string]any // list file host path -> entries
}

func (h *hostFixture) storage(root, runroot string) *storageFixture {
	h.mkdir(filepath.Join(root, "overlay", "l"))
	h.mkdir(filepath.Join(root, "overlay-images"))
	h.mkdir(filepath.Join(root, "overlay-layers"))
	h.mkdir(filepath.Join(root, "overlay-containers"))
	h.mkdir(filepath.Join(runroot, "overlay-containers"))
	h.mkdir(filepath.Join(runroot, "overlay-layers"))
	return &storageFixture{h: h, root: root, runroot: runroot, lists: map[string][]map[string]any{}}
}

// selfBind adds the <root>/overlay bind mount of itself that the overlay driver makes.
func (s *storageFixture) selfBind() {
	p := filepath.Join(s.root, "overlay")
	s.h.bind(p, p)
}

// container adds an entry to the list file (under dir, "containers.json" or
// "volatile-containers.json"), creates the layer and returns its upper directory.
func (s *storageFixture) container(dir, list, id, layer string, names []string, metadata any) string {
	for _, sub := range []string{"diff", "work", "merged"} {
		s.h.mkdir(filepath.Join(s.root, "overlay", layer, sub))
	}
	md := ""
	if metadata != nil {
		b, _ := json.Marshal(metadata)
		md = string(b)
	}
	p := filepath.Join(dir, "overlay-containers", list)
	s.lists[p] = append(s.lists[p], map[string]any{
		"id": id, "names": names, "image": hexID("image"), "layer": layer, "metadata": md,
		"created": "2026-01-02T03:04:05Z", "flags": map[string]any{"MountLabel": ""},
	})
	s.h.writeJSON(p, s.lists[p])
	return filepath.Join(s.root, "overlay", layer, "diff")
}

// userdata writes config.json (and a pid file) in dir/overlay-containers/<id>/userdata.
func (s *storageFixture) userdata(dir, id string, annotations map[string]string, pid int) {
	u := filepath.Join(dir, "overlay-containers", id, "userdata")
	s.h.writeJSON(filepath.Join(u, "config.json"), map[string]any{
		"ociVersion": "1.0.2", "annotations": annotations,
		"mounts": []map[string]any{{"destination": "/etc/hostname", "source": filepath.Join(s.runroot, "overlay-containers", id, "userdata", "hostname")}},
	})
	if pid > 0 {
		s.h.write(filepath.Join(s.runroot, "overlay-containers", id, "userdata", "pidfile"), strconv.Itoa(pid))
	}
}

func (s *storageFixture) mount(layer string) Mount {
	home := filepath.Join(s.root, "overlay")
	return s.h.overlay(filepath.Join(home, layer, "merged"), []string{filepath.Join(home, "l", "IMAGEL0001")},
		filepath.Join(home, layer, "diff"), filepath.Join(home, layer, "work"))
}

func crioAnnotations(sandbox bool, pod, ns, uid, name string) map[string]string {
	labels := map[string]string{labelPodName: pod, labelPodNamespace: ns, labelPodUID: uid, labelContainerName: name}
	if sandbox {
		labels[labelContainerName] = "POD"
	}
	lj, _ := json.Marshal(labels)
	a := map[string]string{
		"io.container.manager": "cri-o", crioLabels: string(lj),
		"io.kubernetes.cri-o.Name": fmt.Sprintf("k8s_%s_%s_%s_%s_0", name, pod, ns, uid),
	}
	for k, v := range labels {
		a[k] = v
	}
	if sandbox {
		a[crioContainerType] = "sandbox"
	} else {
		a[crioContainerType] = "container"
	}
	return a
}
