package discovery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// Default locations, used besides whatever the mount table and the runtimes' configuration
// files reveal.
const (
	DefaultContainerdState  = "/run/containerd"
	DefaultContainerdRoot   = "/var/lib/containerd"
	DefaultContainerdSocket = "/run/containerd/containerd.sock"
	DefaultDockerRoot       = "/var/lib/docker"
	DefaultStorageRoot      = "/var/lib/containers/storage"
	DefaultStorageRunRoot   = "/run/containers/storage"
)

// Options say where the host's files are and which runtimes to look for.
type Options struct {
	// HostRoot is the prefix under which the host's / is visible to this process: "/" (the
	// default) on the host itself, "/host" in a DaemonSet pod that mounts the node's / there.
	// Every host path is read through it; paths in results are host paths without it.
	HostRoot string
	// HostProc is the host's /proc (the host PID namespace's); default HostRoot+"/proc". The
	// host's mount table is HostProc/1/mountinfo, whose reading needs ptrace read access to
	// PID 1 (root, with CAP_SYS_PTRACE in a pod).
	HostProc string
	// Runtimes restricts discovery to these runtimes; empty means all.
	Runtimes []v1alpha1.Runtime

	// Each of the following is one more directory to look in, besides those learned from the
	// mount table and the runtimes' configuration files; empty means the default location.
	// The mount table reveals the roots of running containers (and a Docker data root, which
	// dockerd bind-mounts onto itself); a root holding only stopped containers is otherwise
	// found through these or the configuration files. Running containerd containers are found
	// from their rootfs mounts, whose path names the state directory, and from the task
	// directories under ContainerdState; stopped ones through containerd's API (below), whose
	// snapshot paths are accepted only under a snapshotter root that running containers'
	// mounts, containerd's config.toml or ContainerdRoot name.

	// ContainerdState is a containerd state directory (default /run/containerd).
	ContainerdState string
	// ContainerdRoot is a containerd root directory (default /var/lib/containerd), whose
	// overlayfs snapshotter may hold stopped containers' layers.
	ContainerdRoot string
	// DockerRoot is a Docker data root (default /var/lib/docker).
	DockerRoot string
	// StorageRoot is a containers/storage graph root (default /var/lib/containers/storage).
	StorageRoot string
	// StorageRunRoot is a containers/storage run root (default /run/containers/storage).
	StorageRunRoot string

	// ContainerdSocket is containerd's gRPC socket, a host path. Stopped containerd containers
	// (a task deleted, the container record and its snapshot kept) are found only through it:
	// read-only List and Mounts calls with short timeouts. Empty means the default socket and
	// the grpc.address of containerd's config.toml, each used if it exists; a socket given
	// here must answer. A socket that exists but does not answer is reported as an error, and
	// running containers are found without it either way.
	ContainerdSocket string
	// NoContainerdSocket leaves containerd's API alone: stopped containerd containers are not
	// found.
	NoContainerdSocket bool
}

func (o Options) withDefaults() Options {
	if o.HostRoot == "" {
		o.HostRoot = "/"
	}
	if o.HostProc == "" {
		o.HostProc = filepath.Join(o.HostRoot, "proc")
	}
	if o.ContainerdState == "" {
		o.ContainerdState = DefaultContainerdState
	}
	if o.ContainerdRoot == "" {
		o.ContainerdRoot = DefaultContainerdRoot
	}
	if o.DockerRoot == "" {
		o.DockerRoot = DefaultDockerRoot
	}
	if o.StorageRoot == "" {
		o.StorageRoot = DefaultStorageRoot
	}
	if o.StorageRunRoot == "" {
		o.StorageRunRoot = DefaultStorageRunRoot
	}
	return o
}

func (o Options) wants(r v1alpha1.Runtime) bool {
	return len(o.Runtimes) == 0 || slices.Contains(o.Runtimes, r)
}

// Container is one container that has a writable layer on the node.
type Container struct {
	// Runtime is the engine whose layout holds the layer.
	Runtime v1alpha1.Runtime
	// ID is the engine's container ID: the Kubernetes containerStatuses[].containerID after
	// "<scheme>://".
	ID string
	// Running says the writable layer is in use as a container's root filesystem: mounted
	// in the host mount table, or the root of a live process the runtime recorded. A running
	// container's upper directory must not be changed behind overlayfs's back: act through
	// PIDs (/proc/<pid>/root) instead.
	Running bool
	// Namespace, Pod and PodUID identify the pod; empty outside Kubernetes.
	Namespace, Pod, PodUID string
	// Name is the Kubernetes container name ("POD" for a sandbox), or the engine's own name
	// for a container outside Kubernetes (Docker's name without "/", podman's first name, the
	// containerd ID).
	Name string
	// Sandbox marks a pod sandbox (pause/infra) container; callers usually skip it.
	Sandbox bool
	// EngineNamespace is the containerd namespace ("k8s.io", "default"); empty otherwise.
	EngineNamespace string
	// EngineRoot is where the container was found, as a host path: the runtime directory
	// (containerd state dir, Docker data root, containers/storage graph root), or for a
	// stopped containerd container the containerd socket it was listed through.
	EngineRoot string
	// StorageID names the layer in the runtime's storage: the containerd snapshot number,
	// Docker's overlay2 mount ID, the containers/storage layer ID.
	StorageID string
	// UpperDir is the overlayfs upper directory, as a host path (see UpperDirPath).
	UpperDir string
	// MergedDir is the root filesystem's mount point when the host mount table shows it.
	MergedDir string
	// MountDevice is the "major:minor" of the mounted overlay when running (the st_dev of
	// every file seen through it, also through /proc/<pid>/fd).
	MountDevice string
	// Labels and Annotations are what the identity source held (Docker labels, CRI-O's
	// Kubernetes labels; OCI annotations).
	Labels, Annotations map[string]string
	// PIDs are host PIDs of the container's processes, each checked to have the container's
	// overlay as its root. Empty when not running or when none could be verified.
	PIDs []int
	// HostRoot is Options.HostRoot, kept so the paths can be reached (see UpperDirPath).
	HostRoot string
}

// UpperDirPath is the path through which this process reads UpperDir (HostRoot joined with
// it).
func (c Container) UpperDirPath() string { return hostFS{root: c.HostRoot}.path(c.UpperDir) }

// MergedDirPath is the path through which this process reaches MergedDir, or "".
func (c Container) MergedDirPath() string {
	if c.MergedDir == "" {
		return ""
	}
	return hostFS{root: c.HostRoot}.path(c.MergedDir)
}

// K8sContainerID is the container's ID as Kubernetes shows it in
// pod.status.containerStatuses[].containerID.
func K8sContainerID(c Container) string {
	switch c.Runtime {
	case v1alpha1.RuntimeContainerd:
		return "containerd://" + c.ID
	case v1alpha1.RuntimeDocker:
		return "docker://" + c.ID
	case v1alpha1.RuntimeContainersStorage:
		return "cri-o://" + c.ID
	}
	return string(c.Runtime) + "://" + c.ID
}

// Error is a problem with one container or one metadata file; discovery goes on past it.
type Error struct {
	Runtime v1alpha1.Runtime
	// ID is the container's ID when known.
	ID string
	// Path is the host path involved, if any.
	Path string
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("discovery")
	if e.Runtime != "" {
		b.WriteString(" " + string(e.Runtime))
	}
	if e.ID != "" {
		b.WriteString(" container " + e.ID)
	}
	if e.Path != "" {
		b.WriteString(" (" + e.Path + ")")
	}
	return b.String() + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// candidate is a container found by a runtime's layout, before its processes are attached.
type candidate struct {
	c Container
	// mount is the host mount of its root filesystem, if the mount table shows one.
	mount *Mount
	// pidHint is the PID the runtime recorded for the container's init process (0: none).
	pidHint int
}

type discoverer struct {
	ctx    context.Context
	opts   Options
	fs     hostFS
	mounts []Mount
	errs   []error
	procs  *procIndex
}

func (d *discoverer) errorf(rt v1alpha1.Runtime, id, path string, format string, args ...any) {
	d.errs = append(d.errs, &Error{Runtime: rt, ID: id, Path: path, Err: fmt.Errorf(format, args...)})
}

func (d *discoverer) fail(rt v1alpha1.Runtime, id, path string, err error) {
	d.errs = append(d.errs, &Error{Runtime: rt, ID: id, Path: path, Err: err})
}

// Discover finds every container with a writable layer on the node, from the host's mount
// table and the runtimes' metadata on disk, and stopped containerd containers through
// containerd's socket. It returns what it could find and one error per container, file or
// socket it could not read; it never panics on hostile or malformed metadata or answers.
func Discover(ctx context.Context, opts Options) (containers []Container, errs []error) {
	defer func() {
		if r := recover(); r != nil {
			errs = append(errs, &Error{Err: fmt.Errorf("internal error: %v", r)})
		}
	}()
	o := opts.withDefaults()
	d := &discoverer{ctx: ctx, opts: o, fs: hostFS{root: o.HostRoot}}

	mi := filepath.Join(o.HostProc, "1", "mountinfo")
	f, err := os.Open(mi)
	if err != nil {
		d.fail("", "", mi, fmt.Errorf("reading the host mount table: %w", err))
	} else {
		d.mounts, err = ParseMountInfo(f)
		f.Close()
		if err != nil {
			d.fail("", "", mi, err)
		}
	}

	var cands []*candidate
	if o.wants(v1alpha1.RuntimeContainerd) {
		running := d.containerd()
		cands = append(cands, running...)
		cands = append(cands, d.containerdStopped(running)...)
	}
	if o.wants(v1alpha1.RuntimeDocker) {
		cands = append(cands, d.docker()...)
	}
	if o.wants(v1alpha1.RuntimeContainersStorage) {
		cands = append(cands, d.containersStorage()...)
	}

	seen := map[string]int{}
	for _, cand := range cands {
		if err := ctx.Err(); err != nil {
			d.fail("", "", "", err)
			break
		}
		d.attachProcesses(cand)
		c := cand.c
		c.HostRoot = o.HostRoot
		key := string(c.Runtime) + "/" + c.ID
		if i, ok := seen[key]; ok {
			// Found twice (a mount and a task directory, two list files): keep the running one.
			if c.Running && !containers[i].Running {
				containers[i] = c
			}
			continue
		}
		seen[key] = len(containers)
		containers = append(containers, c)
	}
	sort.SliceStable(containers, func(i, j int) bool {
		if containers[i].Runtime != containers[j].Runtime {
			return containers[i].Runtime < containers[j].Runtime
		}
		return containers[i].ID < containers[j].ID
	})
	return containers, d.errs
}

// matchTail matches the host path p against a tail of components, where "*" matches any one
// safe component. It returns the path before the tail (non-empty, not "/") and the components
// that matched the wildcards.
func matchTail(p string, tail ...string) (prefix string, wild []string, ok bool) {
	if !filepath.IsAbs(p) {
		return "", nil, false
	}
	comps := strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/")
	if len(comps) <= len(tail) {
		return "", nil, false
	}
	off := len(comps) - len(tail)
	for i, t := range tail {
		c := comps[off+i]
		switch {
		case t == "*":
			if !safeName(c) {
				return "", nil, false
			}
			wild = append(wild, c)
		case t != c:
			return "", nil, false
		}
	}
	return "/" + strings.Join(comps[:off], "/"), wild, true
}

// roots canonicalizes candidate root directories, keeping each existing directory once.
func (d *discoverer) roots(rt v1alpha1.Runtime, cands []string) []string {
	var out []string
	for _, p := range cands {
		if p == "" {
			continue
		}
		c, err := d.fs.canonical(p)
		if err != nil {
			if !os.IsNotExist(err) {
				d.fail(rt, "", p, fmt.Errorf("resolving a root: %w", err))
			}
			continue
		}
		if !slices.Contains(out, c) && d.fs.isDir(c) {
			out = append(out, c)
		}
	}
	return out
}

// probeMounts returns the mount points of real (non-virtual) filesystems, where a runtime
// root may be mounted (a dedicated disk) or bind-mounted onto itself.
func (d *discoverer) probeMounts() []string {
	var out []string
	for _, m := range d.mounts {
		switch m.FSType {
		case "proc", "sysfs", "cgroup", "cgroup2", "devtmpfs", "devpts", "mqueue", "nsfs",
			"overlay", "securityfs", "debugfs", "tracefs", "bpf", "pstore", "configfs",
			"fusectl", "hugetlbfs", "autofs", "binfmt_misc", "efivarfs", "rpc_pipefs":
			continue
		}
		mp := m.MountPoint
		if mp == "/" || hasPathPrefix(mp, "/proc") || hasPathPrefix(mp, "/sys") || hasPathPrefix(mp, "/dev") ||
			strings.Contains(mp, "/kubelet/pods/") || strings.Contains(mp, "/userdata/shm") ||
			strings.HasSuffix(mp, "/mounts/shm") || strings.HasSuffix(mp, "/shm") {
			continue
		}
		if !slices.Contains(out, mp) {
			out = append(out, mp)
		}
	}
	return out
}

func hasPathPrefix(p, prefix string) bool {
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}
