package discovery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"github.com/containerd/containerd/api/types"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// containerd's CRI plugin labels every container record it creates with its kind, besides
// the kubelet's io.kubernetes.* labels (containerd pkg/cri labels.go, BuildLabels).
const (
	criKindLabel   = "io.cri-containerd.kind"
	criKindSandbox = "sandbox"
)

// socketTarget is a containerd socket to ask for stopped containers.
type socketTarget struct {
	path string
	// required makes a missing socket an error; otherwise only a socket that exists and does
	// not answer is one.
	required bool
}

// containerdSockets returns the sockets to ask: the one given, or else the default socket
// and the grpc.address of containerd's config.toml (fromConfig, "" if none), each only if it
// exists.
func containerdSockets(given, fromConfig string) []socketTarget {
	if given != "" {
		return []socketTarget{{path: given, required: true}}
	}
	out := []socketTarget{{path: DefaultContainerdSocket}}
	if fromConfig != "" && filepath.Clean(fromConfig) != DefaultContainerdSocket {
		out = append(out, socketTarget{path: filepath.Clean(fromConfig)})
	}
	return out
}

// containerdIdentifier is containerd's rule for namespace and container identifiers
// (containerd pkg/identifiers): what the API hands back is used only when it follows it.
var containerdIdentifier = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)

func validIdentifier(s string) bool { return len(s) <= 76 && containerdIdentifier.MatchString(s) }

// stoppedRecords picks from namespace ns's container records those to report as stopped:
// with a snapshot, no task and not found running from the mount table (running holds
// "<ns>/<id>" of those). A record with an invalid ID costs an error.
func stoppedRecords(ns string, recs []*containersapi.Container, withTask, running map[string]bool) ([]*containersapi.Container, []error) {
	var out []*containersapi.Container
	var errs []error
	for _, r := range recs {
		id := r.GetID()
		switch {
		case !validIdentifier(id):
			errs = append(errs, fmt.Errorf("namespace %q: container ID %q is not a containerd identifier", ns, id))
		case running[ns+"/"+id], withTask[id]:
			// Running (or its task not yet deleted, so its root filesystem is still mounted):
			// the mount table is the source of truth for it.
		case r.GetSnapshotKey() == "" || r.GetSnapshotter() == "":
			// Its root filesystem is not a snapshot: no writable layer of containerd's.
		default:
			out = append(out, r)
		}
	}
	return out, errs
}

// snapshotUpper returns the writable directory among the mounts containerd's snapshots
// service gives for an active snapshot: the upperdir of an overlay, or the source of a
// read-write bind (a snapshot without parents). The path is not checked (parseSnapshotUpper
// does that).
func snapshotUpper(ms []*types.Mount) (string, error) {
	if len(ms) != 1 {
		return "", fmt.Errorf("snapshot has %d mounts, want one", len(ms))
	}
	m := ms[0]
	switch m.GetType() {
	case "overlay":
		var upper []string
		for _, o := range m.GetOptions() {
			if v, ok := strings.CutPrefix(o, "upperdir="); ok {
				upper = append(upper, v)
			}
		}
		if len(upper) != 1 {
			return "", fmt.Errorf("overlay snapshot has %d upperdir options, want one", len(upper))
		}
		return upper[0], nil
	case "bind", "rbind":
		if slices.Contains(m.GetOptions(), "ro") {
			return "", errors.New("snapshot is a read-only bind: no writable layer")
		}
		return m.GetSource(), nil
	}
	return "", fmt.Errorf("snapshot mount type %q is neither an overlay nor a bind of a directory", m.GetType())
}

// parseSnapshotUpper checks that p is a snapshot's writable directory as containerd's
// overlayfs snapshotter lays it out, <root>/snapshots/<N>/fs with N a decimal number, given
// as an absolute, clean path; it returns root and N.
func parseSnapshotUpper(p string) (root, n string, err error) {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.ContainsRune(p, 0) {
		return "", "", fmt.Errorf("snapshot directory %q is not an absolute, clean path", p)
	}
	root, wild, ok := matchTail(p, "snapshots", "*", "fs")
	if !ok || strings.Trim(wild[0], "0123456789") != "" {
		return "", "", fmt.Errorf("snapshot directory %q is not <snapshotter root>/snapshots/<N>/fs", p)
	}
	return root, wild[0], nil
}

// applyCRILabels sets the Kubernetes identity of a container record the CRI plugin created,
// from its labels (the kubelet's io.kubernetes.* labels, which override any image label, and
// the plugin's kind). It reports false for a record without the kind label (not CRI's).
func applyCRILabels(c *Container, l map[string]string) bool {
	kind, ok := l[criKindLabel]
	if !ok {
		return false
	}
	c.Sandbox = kind == criKindSandbox
	applyKubeLabels(c, l)
	if c.Sandbox {
		c.Name = sandboxName
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	return true
}

// containerdStopped finds, through containerd's API, the containers that have a snapshot but
// no task and were not found running: a container stopped through CRI (its task deleted, its
// record and snapshot kept until the kubelet removes it), or exited and cleaned up by ctr.
// running are the containers found from the mount table and task bundles.
func (d *discoverer) containerdStopped(running []*candidate) []*candidate {
	if d.opts.NoContainerdSocket {
		return nil
	}
	known := map[string]bool{}
	for _, c := range running {
		known[c.c.EngineNamespace+"/"+c.c.ID] = true
	}
	var (
		roots []string
		asked []string
		out   []*candidate
	)
	for _, s := range containerdSockets(d.opts.ContainerdSocket, d.containerdConfigSocket()) {
		sock, ok := d.containerdSocket(s)
		if !ok || slices.Contains(asked, sock) {
			continue
		}
		asked = append(asked, sock)
		if roots == nil {
			roots = d.containerdSnapshotRoots(running)
		}
		out = append(out, d.containerdAPIContainers(sock, roots, known)...)
	}
	return out
}

// containerdSocket resolves a socket's host path (links interpreted inside HostRoot) and
// checks that it is a socket. A missing optional socket is no error.
func (d *discoverer) containerdSocket(s socketTarget) (string, bool) {
	const rt = v1alpha1.RuntimeContainerd
	p, err := d.fs.canonical(s.path)
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Lstat(d.fs.path(p)); err == nil && fi.Mode().Type() != fs.ModeSocket {
			err = fmt.Errorf("not a socket (mode %s)", fi.Mode().Type())
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !s.required {
			return "", false
		}
		d.fail(rt, "", s.path, fmt.Errorf("containerd socket: %w; stopped containerd containers are not reported", err))
		return "", false
	}
	return p, true
}

// containerdSnapshotRoots returns the overlayfs snapshotter roots a snapshot directory given
// by containerd's API must be under: those of running containers' upper directories in the
// mount table, ContainerdRoot's and those containerd's config.toml names; canonical and
// existing.
func (d *discoverer) containerdSnapshotRoots(running []*candidate) []string {
	var cands []string
	for _, c := range running {
		if root, _, err := parseSnapshotUpper(c.c.UpperDir); err == nil {
			cands = append(cands, root)
		}
	}
	cands = append(cands, filepath.Join(d.opts.ContainerdRoot, containerdOverlayfsPlugin))
	cands = append(cands, d.containerdConfigSnapshotRoots()...)
	return d.roots(v1alpha1.RuntimeContainerd, cands)
}

// containerdAPIContainers lists, through the socket at host path sock, every namespace's
// stopped containers (Docker's "moby" namespace excepted) and returns them with their
// validated snapshot directories.
func (d *discoverer) containerdAPIContainers(sock string, roots []string, known map[string]bool) []*candidate {
	const rt = v1alpha1.RuntimeContainerd
	unreported := "; stopped containerd containers are not reported"
	api, err := dialContainerd(d.fs.path(sock))
	if err != nil {
		d.fail(rt, "", sock, fmt.Errorf("containerd API: %w%s", err, unreported))
		return nil
	}
	defer api.Close()
	ctx, cancel := context.WithTimeout(d.ctx, containerdSocketTimeout)
	defer cancel()

	nss, err := api.listNamespaces(ctx)
	if err != nil {
		d.fail(rt, "", sock, fmt.Errorf("containerd API: listing namespaces: %w%s", err, unreported))
		return nil
	}
	// expired reports running out of time (or a cancellation) once, not once per call left.
	expired := func() bool {
		if ctx.Err() == nil {
			return false
		}
		d.fail(rt, "", sock, fmt.Errorf("containerd API: %w (%v for all calls)%s", ctx.Err(), containerdSocketTimeout, unreported))
		return true
	}
	var out []*candidate
	for _, ns := range nss {
		if ns == dockerContainerdNamespace {
			continue
		}
		if !validIdentifier(ns) {
			d.errorf(rt, "", sock, "containerd API: namespace %q is not a containerd identifier", ns)
			continue
		}
		if expired() {
			return out
		}
		recs, err := api.listContainers(ctx, ns)
		if err != nil {
			d.fail(rt, "", sock, fmt.Errorf("containerd API: listing the containers of namespace %s: %w%s", ns, err, unreported))
			continue
		}
		tasks, err := api.listTasks(ctx, ns)
		if err != nil {
			d.fail(rt, "", sock, fmt.Errorf("containerd API: listing the tasks of namespace %s: %w%s", ns, err, unreported))
			continue
		}
		stopped, errs := stoppedRecords(ns, recs, tasks, known)
		for _, e := range errs {
			d.fail(rt, "", sock, fmt.Errorf("containerd API: %w", e))
		}
		for _, r := range stopped {
			if expired() {
				return out
			}
			mounts, err := api.snapshotMounts(ctx, ns, r.GetSnapshotter(), r.GetSnapshotKey())
			if status.Code(err) == codes.NotFound {
				continue // removed since it was listed
			}
			if err != nil {
				d.fail(rt, r.GetID(), sock, fmt.Errorf("containerd API: snapshot %q of snapshotter %q: %w", r.GetSnapshotKey(), r.GetSnapshotter(), err))
				continue
			}
			cand, err := d.stoppedCandidate(ns, r, mounts, sock, roots)
			if err != nil {
				d.fail(rt, r.GetID(), sock, err)
				continue
			}
			if cand != nil {
				out = append(out, cand)
			}
		}
	}
	return out
}

// stoppedCandidate makes a stopped container of a record and its snapshot's mounts, after
// checking the snapshot directory: of the overlayfs layout, under one of roots, a directory
// reached without following any link. It returns nil, nil when the directory is gone (the
// container was removed meanwhile).
func (d *discoverer) stoppedCandidate(ns string, r *containersapi.Container, mounts []*types.Mount, sock string, roots []string) (*candidate, error) {
	upper, err := snapshotUpper(mounts)
	if err != nil {
		return nil, err
	}
	root, n, err := parseSnapshotUpper(upper)
	if err != nil {
		return nil, err
	}
	canonRoot, err := d.fs.canonical(root)
	if err != nil {
		return nil, fmt.Errorf("snapshotter root of %s: %w", upper, err)
	}
	if !slices.Contains(roots, canonRoot) {
		return nil, fmt.Errorf("snapshot directory %s is outside every known snapshotter root %v (a non-default containerd root with no running container: give it with --containerd-root)", upper, roots)
	}
	dir := filepath.Join(canonRoot, "snapshots", n, "fs")
	st, err := d.fs.stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot directory: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("snapshot directory %s is not a directory", dir)
	}
	c := Container{
		Runtime: v1alpha1.RuntimeContainerd, ID: r.GetID(), Name: r.GetID(), EngineNamespace: ns, EngineRoot: sock,
		StorageID: n, UpperDir: dir, Labels: r.GetLabels(),
	}
	applyCRILabels(&c, c.Labels)
	return &candidate{c: c}, nil
}
