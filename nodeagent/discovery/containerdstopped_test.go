package discovery

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

func TestContainerdSockets(t *testing.T) {
	tests := []struct {
		name, given, fromConfig string
		want                    []socketTarget
	}{
		{"default only", "", "", []socketTarget{{path: DefaultContainerdSocket}}},
		{"config address too", "", "/run/k3s/containerd/containerd.sock",
			[]socketTarget{{path: DefaultContainerdSocket}, {path: "/run/k3s/containerd/containerd.sock"}}},
		{"config address is the default", "", "/run/containerd//containerd.sock", []socketTarget{{path: DefaultContainerdSocket}}},
		{"given replaces both and must answer", "/srv/ctd.sock", "/run/k3s/containerd/containerd.sock",
			[]socketTarget{{path: "/srv/ctd.sock", required: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, containerdSockets(tt.given, tt.fromConfig), cmp.AllowUnexported(socketTarget{})); diff != "" {
				t.Errorf("containerdSockets (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStoppedRecords(t *testing.T) {
	rec := func(id, snapshotter, key string) *containersapi.Container {
		return &containersapi.Container{ID: id, Snapshotter: snapshotter, SnapshotKey: key}
	}
	tests := []struct {
		name       string
		rec        *containersapi.Container
		want       bool
		wantErr    string
		task, runs bool
	}{
		{name: "stopped: snapshot, no task, no mount", rec: rec("a1", "overlayfs", "a1"), want: true},
		{name: "key other than the ID", rec: rec("a2", "overlayfs", "buildkit-key-9"), want: true},
		{name: "found running from the mount table", rec: rec("a3", "overlayfs", "a3"), runs: true},
		{name: "a task (running, paused or exited, not deleted)", rec: rec("a4", "overlayfs", "a4"), task: true},
		{name: "rootfs not a snapshot", rec: rec("a5", "", "")},
		{name: "snapshot key without snapshotter", rec: rec("a6", "", "a6")},
		{name: "ID with a slash", rec: rec("../../etc", "overlayfs", "x"), wantErr: "not a containerd identifier"},
		{name: "ID with a newline", rec: rec("a\nb", "overlayfs", "x"), wantErr: "not a containerd identifier"},
		{name: "empty ID", rec: rec("", "overlayfs", "x"), wantErr: "not a containerd identifier"},
		{name: "ID too long", rec: rec(strings.Repeat("a", 77), "overlayfs", "x"), wantErr: "not a containerd identifier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withTask, running := map[string]bool{}, map[string]bool{}
			if tt.task {
				withTask[tt.rec.ID] = true
			}
			if tt.runs {
				running["k8s.io/"+tt.rec.ID] = true
			}
			// The same ID running in another namespace is another container.
			running["default/"+tt.rec.ID] = true
			got, errs := stoppedRecords("k8s.io", []*containersapi.Container{tt.rec}, withTask, running)
			if (len(got) == 1) != tt.want {
				t.Errorf("picked = %v, want %v", got, tt.want)
			}
			if tt.wantErr == "" && len(errs) > 0 || tt.wantErr != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.wantErr)) {
				t.Errorf("errors = %v, want %q", errs, tt.wantErr)
			}
		})
	}
}

func TestSnapshotUpper(t *testing.T) {
	const up = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/42/fs"
	tests := []struct {
		name    string
		mounts  []*types.Mount
		want    string
		wantErr string
	}{
		{"overlay", overlayMounts(up), up, ""},
		{"overlay options in any order, extra ones", []*types.Mount{{Type: "overlay", Options: []string{"userxattr", "upperdir=" + up, "lowerdir=/l", "workdir=/w", "volatile"}}}, up, ""},
		{"bind of a snapshot without parents", []*types.Mount{{Type: "bind", Source: up, Options: []string{"rw", "rbind"}}}, up, ""},
		{"read-only bind (a view)", []*types.Mount{{Type: "bind", Source: up, Options: []string{"ro", "rbind"}}}, "", "read-only"},
		{"overlay without upperdir (a view)", []*types.Mount{{Type: "overlay", Options: []string{"lowerdir=/a:/b"}}}, "", "0 upperdir"},
		{"two upperdirs", []*types.Mount{{Type: "overlay", Options: []string{"upperdir=" + up, "upperdir=/etc"}}}, "", "2 upperdir"},
		{"a block device (devmapper)", []*types.Mount{{Type: "ext4", Source: "/dev/mapper/thin-42"}}, "", `type "ext4"`},
		{"no mount", nil, "", "0 mounts"},
		{"two mounts", append(overlayMounts(up), overlayMounts(up)...), "", "2 mounts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := snapshotUpper(tt.mounts)
			if got != tt.want || (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("snapshotUpper = %q, %v; want %q, error %q", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseSnapshotUpper(t *testing.T) {
	const root = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs"
	tests := []struct {
		upper, root, n string
	}{
		{root + "/snapshots/42/fs", root, "42"},
		{"/srv/stargz/snapshotter/snapshots/7/fs", "/srv/stargz/snapshotter", "7"},
		{"snapshots/42/fs", "", ""},                      // relative
		{root + "/snapshots/42/fs/", "", ""},             // not clean
		{root + "/snapshots/../snapshots/42/fs", "", ""}, // not clean
		{root + "/../../../../etc/snapshots/1/fs", "", ""},
		{root + "/snapshots/42/work", "", ""},
		{root + "/snapshots/4a/fs", "", ""},
		{root + "/snapshots//fs", "", ""},
		{root + "/snapshots/42", "", ""},
		{"/snapshots/42/fs", "", ""}, // no root
		{"/", "", ""},
		{"", "", ""},
		{root + "/snapshots/42/fs\x00", "", ""},
	}
	for _, tt := range tests {
		root, n, err := parseSnapshotUpper(tt.upper)
		if root != tt.root || n != tt.n || (err == nil) != (tt.root != "") {
			t.Errorf("parseSnapshotUpper(%q) = %q, %q, %v; want %q, %q", tt.upper, root, n, err, tt.root, tt.n)
		}
	}
}

func TestApplyCRILabels(t *testing.T) {
	const id = "c0ffee"
	uid := "6f1c2a35-0e4c-4a51-9d36-1d8b2f0f6a11"
	tests := []struct {
		name   string
		labels map[string]string
		want   Container
		cri    bool
	}{
		{"CRI container", criRecord(id, false, "web-0", "shop", uid, "nginx").Labels,
			Container{ID: id, Namespace: "shop", Pod: "web-0", PodUID: uid, Name: "nginx"}, true},
		{"CRI sandbox: no container name label", criRecord(id, true, "web-0", "shop", uid, "").Labels,
			Container{ID: id, Namespace: "shop", Pod: "web-0", PodUID: uid, Name: "POD", Sandbox: true}, true},
		{"CRI sandbox whose pod labels claim a container name",
			map[string]string{criKindLabel: criKindSandbox, labelPodName: "web-0", labelContainerName: "evil"},
			Container{ID: id, Pod: "web-0", Name: "POD", Sandbox: true}, true},
		{"CRI container of a client that sets no kubelet labels", map[string]string{criKindLabel: "container"},
			Container{ID: id, Name: id}, true},
		{"not CRI's: kubelet-looking labels are not trusted", map[string]string{labelPodName: "web-0", labelContainerName: "nginx"},
			Container{ID: id, Name: id}, false},
		{"no labels", nil, Container{ID: id, Name: id}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Container{ID: id, Name: id}
			if got := applyCRILabels(&c, tt.labels); got != tt.cri {
				t.Errorf("applyCRILabels = %v, want %v", got, tt.cri)
			}
			if diff := cmp.Diff(tt.want, c); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDiscoverContainerdStopped serves containerd's API on the fixture host's default socket
// and checks which records become stopped containers, with what identity and directory.
func TestDiscoverContainerdStopped(t *testing.T) {
	h := newHost(t)
	ctd := h.containerd("/var/lib/containerd", "/run/containerd")
	uid := "6f1c2a35-0e4c-4a51-9d36-1d8b2f0f6a11"
	f := &fakeContainerd{
		namespaces: []string{"k8s.io", "default", "moby", "bad/ns"},
		containers: map[string][]*containersapi.Container{},
		tasks:      map[string][]string{},
		mounts:     map[string][]*types.Mount{},
	}
	add := func(ns string, r *containersapi.Container, upper string) {
		f.containers[ns] = append(f.containers[ns], r)
		if upper != "" {
			f.mounts[ns+"/"+r.Snapshotter+"/"+r.SnapshotKey] = overlayMounts(upper)
		}
	}

	// Running: the sandbox (mount table) and app (mount table); the API lists them too.
	sbxID, appID := hexID("s-sandbox"), hexID("s-app")
	sbxMount, sbxUpper, _ := ctd.running("k8s.io", sbxID, criAnnotations(true, "web-0", "shop", uid, ""), 0, false)
	_, appUpper, _ := ctd.running("k8s.io", appID, criAnnotations(false, "web-0", "shop", uid, "nginx"), 0, false)
	add("k8s.io", criRecord(sbxID, true, "web-0", "shop", uid, ""), sbxUpper)
	add("k8s.io", criRecord(appID, false, "web-0", "shop", uid, "nginx"), appUpper)
	f.tasks["k8s.io"] = []string{sbxID, appID}

	// The previous instance of the app (crash loop): task deleted, record and snapshot kept.
	prevID := hexID("s-prev")
	prevN, prevUpper := ctd.snapshot()
	h.write(filepath.Join(prevUpper, "var/log/app.log"), "previous instance")
	add("k8s.io", criRecord(prevID, false, "web-0", "shop", uid, "nginx"), prevUpper)

	// A stopped pod's sandbox.
	oldSbxID := hexID("s-old-sandbox")
	oldSbxN, oldSbxUpper := ctd.snapshot()
	add("k8s.io", criRecord(oldSbxID, true, "job-1", "batch", "u-2", ""), oldSbxUpper)

	// A task that exited but was not deleted: its rootfs stays mounted (here in a private
	// namespace, so no mount shows): not reported as stopped.
	exitedID := hexID("s-exited")
	_, exitedUpper := ctd.snapshot()
	add("k8s.io", criRecord(exitedID, false, "job-1", "batch", "u-2", "worker"), exitedUpper)
	f.tasks["k8s.io"] = append(f.tasks["k8s.io"], exitedID)

	// Removed between the listing and the Mounts call: NotFound, skipped quietly.
	add("k8s.io", criRecord(hexID("s-gone"), false, "job-1", "batch", "u-2", "gone"), "")
	// Its snapshot directory removed after Mounts: skipped quietly.
	vanishID := hexID("s-vanish")
	add("k8s.io", criRecord(vanishID, false, "job-1", "batch", "u-2", "vanish"), filepath.Join(ctd.snapshots(), "999", "fs"))

	// A container of ctr in namespace "default", stopped, whose image sets kubelet labels.
	ctrN, ctrUpper := ctd.snapshot()
	add("default", &containersapi.Container{ID: "web", Snapshotter: "overlayfs", SnapshotKey: "web",
		Labels: map[string]string{labelPodName: "fake", "team": "storage"}}, ctrUpper)
	// A container with a root filesystem of its own (no snapshot).
	add("default", &containersapi.Container{ID: "plain-rootfs"}, "")

	// Docker's namespace: its containers are Docker's.
	_, mobyUpper := ctd.snapshot()
	add("moby", criRecord(hexID("s-moby"), false, "x", "y", "z", "w"), mobyUpper)

	// A second containerd's snapshotter root (k3s), known only from a running container's
	// mount: the stopped container under it is accepted.
	k3s := h.containerd("/var/lib/rancher/k3s/agent/containerd", "/run/k3s/containerd")
	k3s.running("k8s.io", hexID("s-k3s-running"), criAnnotations(false, "dns", "kube-system", "u-4", "coredns"), 0, false)
	k3sN, k3sUpper := k3s.snapshot()
	k3sID := hexID("s-k3s-stopped")
	add("k8s.io", criRecord(k3sID, false, "dns", "kube-system", "u-4", "coredns"), k3sUpper)

	// Roots named by containerd's config.toml only: its root, and the overlayfs plugin's
	// root_path.
	h.write("/etc/containerd/config.toml", `version = 2
root = "/data/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins]
  [plugins."io.containerd.snapshotter.v1.overlayfs"]
    root_path = "/mnt/fast/overlay"
`)
	cfgRoot := h.containerd("/data/containerd", "/run/containerd")
	cfgN, cfgUpper := cfgRoot.snapshot()
	cfgID := hexID("s-config-root")
	add("k8s.io", criRecord(cfgID, false, "db-0", "data", "u-5", "postgres"), cfgUpper)
	rootPathUpper := "/mnt/fast/overlay/snapshots/5/fs"
	h.mkdir(rootPathUpper)
	rootPathID := hexID("s-root-path")
	add("k8s.io", criRecord(rootPathID, false, "db-1", "data", "u-7", "postgres"), rootPathUpper)

	// Hostile or broken answers: each costs one error for its own container.
	hostile := map[string][]*types.Mount{}
	h.mkdir("/srv/other/snapshots/3/fs")
	hostile[hexID("h-unknown-root")] = overlayMounts("/srv/other/snapshots/3/fs")
	h.mkdir("/etc/snapshots/1/fs")
	hostile[hexID("h-etc")] = overlayMounts("/etc/snapshots/1/fs")
	hostile[hexID("h-dotdot")] = overlayMounts(filepath.Join(ctd.snapshots(), "7") + "/../../../../../../etc/snapshots/1/fs")
	hostile[hexID("h-relative")] = overlayMounts("snapshots/7/fs")
	hostile[hexID("h-not-fs")] = overlayMounts(filepath.Join(ctd.snapshots(), "7", "work"))
	hostile[hexID("h-devmapper")] = []*types.Mount{{Type: "ext4", Source: "/dev/mapper/thin-7"}}
	// A snapshot directory that is a link out of the snapshotter root.
	linkN, _ := ctd.snapshot()
	linkFS := filepath.Join(ctd.snapshots(), strconv.Itoa(linkN), "fs")
	if err := os.Remove(h.path(linkFS)); err != nil {
		t.Fatal(err)
	}
	h.symlink("/etc", linkFS)
	hostile[hexID("h-link")] = overlayMounts(linkFS)
	for id, ms := range hostile {
		r := criRecord(id, false, "evil-0", "evil", "u-6", "x")
		f.containers["k8s.io"] = append(f.containers["k8s.io"], r)
		f.mounts["k8s.io/overlayfs/"+id] = ms
	}
	f.containers["k8s.io"] = append(f.containers["k8s.io"], &containersapi.Container{ID: "../../x", Snapshotter: "overlayfs", SnapshotKey: "x"})

	f.serve(t, h.path(DefaultContainerdSocket))
	got, errs := h.discover(Options{})

	rt := v1alpha1.RuntimeContainerd
	sock := DefaultContainerdSocket
	stopped := func(id, ns string, n int, upper string, labels map[string]string) Container {
		c := Container{Runtime: rt, ID: id, Name: id, EngineNamespace: ns, EngineRoot: sock, StorageID: strconv.Itoa(n),
			UpperDir: upper, Labels: labels, HostRoot: h.root}
		applyCRILabels(&c, labels)
		return c
	}
	want := []Container{
		stopped(prevID, "k8s.io", prevN, prevUpper, criRecord(prevID, false, "web-0", "shop", uid, "nginx").Labels),
		stopped(oldSbxID, "k8s.io", oldSbxN, oldSbxUpper, criRecord(oldSbxID, true, "job-1", "batch", "u-2", "").Labels),
		stopped("web", "default", ctrN, ctrUpper, map[string]string{labelPodName: "fake", "team": "storage"}),
		stopped(k3sID, "k8s.io", k3sN, k3sUpper, criRecord(k3sID, false, "dns", "kube-system", "u-4", "coredns").Labels),
		stopped(cfgID, "k8s.io", cfgN, cfgUpper, criRecord(cfgID, false, "db-0", "data", "u-5", "postgres").Labels),
		stopped(rootPathID, "k8s.io", 5, rootPathUpper, criRecord(rootPathID, false, "db-1", "data", "u-7", "postgres").Labels),
	}
	var gotStopped []Container
	for _, c := range got {
		if !c.Running {
			gotStopped = append(gotStopped, c)
		}
	}
	sortByID := cmpopts.SortSlices(func(a, b Container) bool { return a.ID < b.ID })
	if diff := cmp.Diff(want, gotStopped, sortByID); diff != "" {
		t.Errorf("stopped containers (-want +got):\n%s", diff)
	}
	if want[0].Name != "nginx" || want[0].Pod != "web-0" || want[1].Name != "POD" || !want[1].Sandbox || want[2].Pod != "" {
		t.Errorf("identities built by the test itself are wrong: %+v", want[:3])
	}

	// Running containers are reported once, from the mount table.
	var running []string
	for _, c := range got {
		if c.Running {
			running = append(running, c.ID)
			if c.EngineRoot == sock {
				t.Errorf("running container %s reported through the API: %+v", c.ID, c)
			}
		}
	}
	if len(running) != 3 || !slices.Contains(running, sbxID) || !slices.Contains(running, appID) {
		t.Errorf("running = %v, want the sandbox, the app and the k3s container once each", running)
	}
	if sbx := got[slices.IndexFunc(got, func(c Container) bool { return c.ID == sbxID })]; sbx.MountDevice != sbxMount.Device() {
		t.Errorf("sandbox = %+v", sbx)
	}

	var hostileIDs []string
	for id := range hostile {
		hostileIDs = append(hostileIDs, id)
	}
	errorsMention(t, errs, append(hostileIDs, "bad/ns", "../../x", "outside every known snapshotter root", "symbolic link")...)
	if len(errs) != len(hostile)+2 {
		t.Errorf("%d errors, want %d (one per hostile record, the bad namespace and the bad ID): %v", len(errs), len(hostile)+2, errs)
	}
	for _, c := range got {
		if c.Pod == "evil-0" || strings.HasPrefix(c.UpperDir, "/etc") || strings.HasPrefix(c.UpperDir, "/srv") {
			t.Errorf("hostile record reported: %+v", c)
		}
	}

	// Only read-only calls reached the server, each namespaced call with its namespace.
	for _, m := range f.called() {
		if !slices.Contains(containerdReadOnlyMethods, m) {
			t.Errorf("call %s is not a read-only one", m)
		}
	}

	// ContainerdRoot names a containerd root, not a snapshotter root: /srv/other/snapshots
	// is still refused; the same snapshot in <root>/io.containerd.snapshotter.v1.overlayfs
	// is accepted.
	unknownID := hexID("h-unknown-root")
	h.mkdir("/srv/other/io.containerd.snapshotter.v1.overlayfs/snapshots/3/fs")
	got, errs = h.discover(Options{ContainerdRoot: "/srv/other"})
	if slices.ContainsFunc(got, func(c Container) bool { return c.ID == unknownID }) {
		t.Errorf("/srv/other/snapshots/3/fs accepted with ContainerdRoot /srv/other")
	}
	errorsMention(t, errs, unknownID)
	f.mounts["k8s.io/overlayfs/"+unknownID] = overlayMounts("/srv/other/io.containerd.snapshotter.v1.overlayfs/snapshots/3/fs")
	got, _ = h.discover(Options{ContainerdRoot: "/srv/other"})
	if !slices.ContainsFunc(got, func(c Container) bool { return c.ID == unknownID && !c.Running && c.StorageID == "3" }) {
		t.Errorf("stopped container under ContainerdRoot not found")
	}

	// Disabled: the socket is not even asked.
	before := len(f.called())
	got, errs = h.discover(Options{NoContainerdSocket: true})
	if slices.ContainsFunc(got, func(c Container) bool { return !c.Running }) || len(errs) > 0 || len(f.called()) != before {
		t.Errorf("with NoContainerdSocket: %d containers, errors %v, %d calls", len(got), errs, len(f.called())-before)
	}
}

func TestDiscoverContainerdListFallback(t *testing.T) {
	h := newHost(t)
	ctd := h.containerd("/var/lib/containerd", "/run/containerd")
	n, upper := ctd.snapshot()
	id := hexID("fallback")
	f := &fakeContainerd{namespaces: []string{"k8s.io"}, noListStream: true,
		containers: map[string][]*containersapi.Container{"k8s.io": {criRecord(id, false, "a", "b", "c", "d")}},
		mounts:     map[string][]*types.Mount{"k8s.io/overlayfs/" + id: overlayMounts(upper)}}
	f.serve(t, h.path(DefaultContainerdSocket))
	got, errs := h.discover(Options{})
	if len(errs) > 0 || len(got) != 1 || got[0].ID != id || got[0].StorageID != strconv.Itoa(n) || got[0].Running {
		t.Errorf("Discover = %+v, %v; want the stopped container through List", got, errs)
	}
	if !slices.Contains(f.called(), "/containerd.services.containers.v1.Containers/List") {
		t.Errorf("calls = %v, want List after ListStream's Unimplemented", f.called())
	}
}

// TestDiscoverContainerdSocketThroughLink: a socket path with a link in it (/var/run ->
// /run) is resolved inside the host root, not in this process's own file system.
func TestDiscoverContainerdSocketThroughLink(t *testing.T) {
	h := newHost(t)
	ctd := h.containerd("/var/lib/containerd", "/run/containerd")
	_, upper := ctd.snapshot()
	id := hexID("link")
	f := &fakeContainerd{namespaces: []string{"k8s.io"},
		containers: map[string][]*containersapi.Container{"k8s.io": {criRecord(id, false, "a", "b", "c", "d")}},
		mounts:     map[string][]*types.Mount{"k8s.io/overlayfs/" + id: overlayMounts(upper)}}
	f.serve(t, h.path("/run/containerd/containerd.sock"))
	h.symlink("/run", "/var/run")
	got, errs := h.discover(Options{ContainerdSocket: "/var/run/containerd/containerd.sock"})
	if len(errs) > 0 || len(got) != 1 || got[0].ID != id || got[0].EngineRoot != "/run/containerd/containerd.sock" {
		t.Errorf("Discover = %+v, %v; want the stopped container through /run/containerd/containerd.sock", got, errs)
	}
}

// TestDiscoverContainerdOutOfTime: once the calls' time is up (here: the caller cancels
// during the first Mounts), no further call is made and one error says so.
func TestDiscoverContainerdOutOfTime(t *testing.T) {
	h := newHost(t)
	ctd := h.containerd("/var/lib/containerd", "/run/containerd")
	f := &fakeContainerd{namespaces: []string{"k8s.io"}, containers: map[string][]*containersapi.Container{}, mounts: map[string][]*types.Mount{}}
	for _, seed := range []string{"t1", "t2", "t3"} {
		_, upper := ctd.snapshot()
		id := hexID(seed)
		f.containers["k8s.io"] = append(f.containers["k8s.io"], criRecord(id, false, "a", "b", "c", seed))
		f.mounts["k8s.io/overlayfs/"+id] = overlayMounts(upper)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.onMounts = cancel
	f.serve(t, h.path(DefaultContainerdSocket))
	h.writeMountInfo()
	_, errs := Discover(ctx, Options{HostRoot: h.root})
	mounts := 0
	for _, m := range f.called() {
		if strings.HasSuffix(m, "/Mounts") {
			mounts++
		}
	}
	budget := 0
	for _, e := range errs {
		if strings.Contains(e.Error(), "for all calls") && errors.Is(e, context.Canceled) {
			budget++
		}
	}
	if mounts != 1 || budget != 1 || len(errs) > 2 {
		t.Errorf("%d Mounts calls, %d out-of-time errors, errors %v; want one call, one such error (and maybe the cancelled call's)", mounts, budget, errs)
	}
}

// TestDiscoverContainerdSocketProblems: a missing default socket is no error, every other
// problem with a socket is one that names it, and discovery goes on.
func TestDiscoverContainerdSocketProblems(t *testing.T) {
	h := newHost(t)
	ctd := h.containerd("/var/lib/containerd", "/run/containerd")
	runID := hexID("p-running")
	ctd.running("k8s.io", runID, criAnnotations(false, "a", "b", "c", "d"), 0, false)
	foundRunning := func(t *testing.T, got []Container) {
		t.Helper()
		if len(got) != 1 || got[0].ID != runID || !got[0].Running {
			t.Errorf("Discover = %+v, want the running container from the mount table", got)
		}
	}

	t.Run("default socket missing", func(t *testing.T) {
		got, errs := h.discover(Options{})
		foundRunning(t, got)
		if len(errs) > 0 {
			t.Errorf("errors: %v", errs)
		}
	})
	t.Run("given socket missing", func(t *testing.T) {
		got, errs := h.discover(Options{ContainerdSocket: "/run/k3s/containerd/containerd.sock"})
		foundRunning(t, got)
		errorsMention(t, errs, "/run/k3s/containerd/containerd.sock", "stopped containerd containers are not reported")
	})
	t.Run("not a socket", func(t *testing.T) {
		h.write("/run/k3s/containerd/containerd.sock", "")
		got, errs := h.discover(Options{ContainerdSocket: "/run/k3s/containerd/containerd.sock"})
		foundRunning(t, got)
		errorsMention(t, errs, "/run/k3s/containerd/containerd.sock", "not a socket")
	})
	t.Run("stale socket nobody listens on", func(t *testing.T) {
		p := h.path(DefaultContainerdSocket)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
		t.Cleanup(func() { os.Remove(p) })
		start := time.Now()
		got, errs := h.discover(Options{})
		foundRunning(t, got)
		errorsMention(t, errs, DefaultContainerdSocket, "connection refused", "stopped containerd containers are not reported")
		if d := time.Since(start); d > containerdCallTimeout {
			t.Errorf("a refused connection took %v", d)
		}
	})
	t.Run("a listener that never answers", func(t *testing.T) {
		p := h.path("/run/hung/containerd.sock")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var conns []net.Conn // held open, never read
		t.Cleanup(func() {
			l.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
		start := time.Now()
		got, errs := h.discover(Options{ContainerdSocket: "/run/hung/containerd.sock"})
		d := time.Since(start)
		foundRunning(t, got)
		errorsMention(t, errs, "/run/hung/containerd.sock", "stopped containerd containers are not reported")
		t.Logf("a socket that never answers cost %v: %v", d.Round(time.Millisecond), errs)
		if d > containerdCallTimeout+2*time.Second {
			t.Errorf("took %v, want about the %v call timeout", d, containerdCallTimeout)
		}
	})
}

// TestContainerdClientIsReadOnly: the client refuses every call but the read-only ones
// before anything reaches containerd.
func TestContainerdClientIsReadOnly(t *testing.T) {
	dir, err := os.MkdirTemp("", "lkro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeContainerd{namespaces: []string{"k8s.io"}}
	sock := filepath.Join(dir, "c.sock")
	f.serve(t, sock)
	api, err := dialContainerd(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	ctx, cancel := call(context.Background(), "k8s.io")
	defer cancel()
	_, err = api.containers.Delete(ctx, &containersapi.DeleteContainerRequest{ID: "x"})
	if !errors.Is(err, errNotReadOnly) {
		t.Errorf("Delete: %v, want errNotReadOnly", err)
	}
	_, err = api.containers.Get(ctx, &containersapi.GetContainerRequest{ID: "x"})
	if !errors.Is(err, errNotReadOnly) {
		t.Errorf("Get (not needed, so not allowed): %v, want errNotReadOnly", err)
	}
	if nss, err := api.listNamespaces(ctx); err != nil || !slices.Equal(nss, []string{"k8s.io"}) {
		t.Errorf("listNamespaces = %v, %v", nss, err)
	}
	if calls := f.called(); !slices.Equal(calls, []string{"/containerd.services.namespaces.v1.Namespaces/List"}) {
		t.Errorf("server saw %v, want only the namespace listing", calls)
	}
}
