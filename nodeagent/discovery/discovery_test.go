package discovery

import (
	"errors"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// withHostRoot sets HostRoot (which every discovered container carries) on wanted containers
// and sorts them as Discover does.
func withHostRoot(root string, cs ...Container) []Container {
	for i := range cs {
		cs[i].HostRoot = root
	}
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].Runtime != cs[j].Runtime {
			return cs[i].Runtime < cs[j].Runtime
		}
		return cs[i].ID < cs[j].ID
	})
	return cs
}

// errorsMention checks that some error names each of the given strings (container IDs, paths).
func errorsMention(t *testing.T, errs []error, subs ...string) {
	t.Helper()
	for _, s := range subs {
		found := false
		for _, e := range errs {
			if strings.Contains(e.Error(), s) {
				found = true
			}
		}
		if !found {
			t.Errorf("no error mentions %q; errors: %v", s, errs)
		}
	}
}

func TestDiscoverContainerd(t *testing.T) {
	h := newHost(t)
	ctd := h.containerd("/var/lib/containerd", "/run/containerd")
	uid := "6f1c2a35-0e4c-4a51-9d36-1d8b2f0f6a11"
	sbxID, appID := hexID("sandbox"), hexID("app")
	sbxAnn := criAnnotations(true, "web-0", "shop", uid, "")
	appAnn := criAnnotations(false, "web-0", "shop", uid, "nginx")
	sbxMount, sbxUpper, sbxSnap := ctd.running("k8s.io", sbxID, sbxAnn, 4010, false)
	appMount, appUpper, appSnap := ctd.running("k8s.io", appID, appAnn, 4001, true)

	// Processes: the init process (cgroupfs v1 path) and another one (systemd v2 path) are the
	// container's; a process in its cgroup whose root is the host's, and one whose root is
	// the sandbox's overlay, are not.
	h.process(4001, "4:memory:/kubepods/besteffort/pod"+uid+"/"+appID+"\n0::/\n", appMount)
	h.process(4002, "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"+strings.ReplaceAll(uid, "-", "_")+".slice/cri-containerd-"+appID+".scope\n", appMount)
	h.process(4003, "0::/kubepods/besteffort/pod"+uid+"/"+appID+"\n", h.hostRootMount())
	h.process(4004, "0::/kubepods/besteffort/pod"+uid+"/"+appID+"\n", sbxMount)
	h.process(4010, "0::/kubepods/besteffort/pod"+uid+"/"+sbxID+"\n", sbxMount)

	// A container outside CRI (ctr run) in namespace "default".
	webMount, webUpper, webSnap := ctd.running("default", "web", map[string]string{}, 4020, false)
	h.process(4020, "0::/default/web\n", webMount)

	// Docker's containers in namespace "moby" belong to Docker.
	ctd.running("moby", hexID("moby"), map[string]string{}, 0, false)

	// A task whose mount the host table does not show (containerd in a private mount
	// namespace): found through init.pid, its cgroup and its process's root.
	privID := hexID("private")
	privN, privUpper := ctd.snapshot()
	ctd.bundle("k8s.io", privID, criAnnotations(false, "job-1", "batch", "u-2", "worker"), 4030)
	privRoot := Mount{ID: 500, ParentID: 1, Major: 0, Minor: 77, Root: "/", FSType: "overlay", Source: "overlay",
		MountOptions: "rw", SuperOptions: []MountOption{{"lowerdir", "3/fs"}, {"upperdir", privUpper}, {"workdir", "/w"}}}
	h.process(4030, "0::/kubepods/pod-u-2/"+privID+"\n", privRoot)

	// A stale bundle whose init.pid names a PID now used by an unrelated process.
	staleID := hexID("stale")
	ctd.bundle("k8s.io", staleID, criAnnotations(false, "old", "batch", "u-3", "c"), 4040)
	h.process(4040, "0::/user.slice/other\n", privRoot)

	// A second containerd (k3s) with non-default roots, known only from the mount table.
	k3s := h.containerd("/var/lib/rancher/k3s/agent/containerd", "/run/k3s/containerd")
	k3sID := hexID("k3s")
	k3sMount, k3sUpper, k3sSnap := k3s.running("k8s.io", k3sID, criAnnotations(false, "coredns-1", "kube-system", "u-4", "coredns"), 0, false)

	// A snapshot without parents is bind-mounted, not an overlay: its directory is the bind's
	// root within the filesystem mounted at /.
	bindID := hexID("bind")
	bindN, bindUpper := ctd.snapshot()
	bindBundle := ctd.bundle("k8s.io", bindID, criAnnotations(false, "scratch-0", "shop", uid, "scratch"), 0)
	h.bind(bindUpper, filepath.Join(bindBundle, "rootfs"))

	got, errs := h.discover(Options{})
	if len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
	rt := v1alpha1.RuntimeContainerd
	bundle := func(state, ns, id string) string {
		return filepath.Join(state, "io.containerd.runtime.v2.task", ns, id, "rootfs")
	}
	want := withHostRoot(h.root,
		Container{Runtime: rt, ID: sbxID, Running: true, Namespace: "shop", Pod: "web-0", PodUID: uid, Name: "POD", Sandbox: true,
			EngineNamespace: "k8s.io", EngineRoot: "/run/containerd", StorageID: sbxSnap, UpperDir: sbxUpper,
			MergedDir: bundle("/run/containerd", "k8s.io", sbxID), MountDevice: sbxMount.Device(), Annotations: sbxAnn, PIDs: []int{4010}},
		Container{Runtime: rt, ID: appID, Running: true, Namespace: "shop", Pod: "web-0", PodUID: uid, Name: "nginx",
			EngineNamespace: "k8s.io", EngineRoot: "/run/containerd", StorageID: appSnap, UpperDir: appUpper,
			MergedDir: bundle("/run/containerd", "k8s.io", appID), MountDevice: appMount.Device(), Annotations: appAnn, PIDs: []int{4001, 4002}},
		Container{Runtime: rt, ID: "web", Running: true, Name: "web",
			EngineNamespace: "default", EngineRoot: "/run/containerd", StorageID: webSnap, UpperDir: webUpper,
			MergedDir: bundle("/run/containerd", "default", "web"), MountDevice: webMount.Device(), Annotations: map[string]string{}, PIDs: []int{4020}},
		Container{Runtime: rt, ID: privID, Running: true, Namespace: "batch", Pod: "job-1", PodUID: "u-2", Name: "worker",
			EngineNamespace: "k8s.io", EngineRoot: "/run/containerd", StorageID: strconv.Itoa(privN), UpperDir: privUpper,
			MountDevice: "0:77", Annotations: criAnnotations(false, "job-1", "batch", "u-2", "worker"), PIDs: []int{4030}},
		Container{Runtime: rt, ID: k3sID, Running: true, Namespace: "kube-system", Pod: "coredns-1", PodUID: "u-4", Name: "coredns",
			EngineNamespace: "k8s.io", EngineRoot: "/run/k3s/containerd", StorageID: k3sSnap, UpperDir: k3sUpper,
			MergedDir:   bundle("/run/k3s/containerd", "k8s.io", k3sID),
			MountDevice: k3sMount.Device(), Annotations: criAnnotations(false, "coredns-1", "kube-system", "u-4", "coredns")},
		Container{Runtime: rt, ID: bindID, Running: true, Namespace: "shop", Pod: "scratch-0", PodUID: uid, Name: "scratch",
			EngineNamespace: "k8s.io", EngineRoot: "/run/containerd", StorageID: strconv.Itoa(bindN), UpperDir: bindUpper,
			MergedDir: filepath.Join(bindBundle, "rootfs"), MountDevice: "254:0", Annotations: criAnnotations(false, "scratch-0", "shop", uid, "scratch")},
	)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Discover (-want +got):\n%s", diff)
	}
	for _, c := range got {
		if c.ID == appID && K8sContainerID(c) != "containerd://"+appID {
			t.Errorf("K8sContainerID = %q", K8sContainerID(c))
		}
		if c.UpperDirPath() != filepath.Join(h.root, c.UpperDir) {
			t.Errorf("UpperDirPath = %q", c.UpperDirPath())
		}
	}
}

func TestDiscoverDocker(t *testing.T) {
	h := newHost(t)
	// A non-default data root, bind-mounted onto itself as dockerd does, known only from the
	// mount table; /var/lib/docker does not exist.
	d := h.docker("/data/docker")
	h.bind("/data/docker", "/data/docker")
	uid := "0b7c2f1e-5d0a-4d8e-b3c4-7b9f1f8c2d10"

	appID, appMnt := hexID("d-app"), hexID("d-app-mount")
	appLabels := criDockerLabels(false, "api-7d9f", "prod", uid, "api")
	appUpper := d.container(appID, appMnt, "k8s_api_api-7d9f_prod_"+uid+"_0", appLabels, dockerState{Running: true, Pid: 5001}, nil)
	appMount := d.mount(appMnt, true) // relative upperdir, as with long options
	h.process(5001, "12:pids:/docker/"+appID+"\n0::/\n", appMount)
	h.process(5002, "0::/system.slice/docker-"+appID+".scope\n", appMount)

	sbxID, sbxMnt := hexID("d-sbx"), hexID("d-sbx-mount")
	sbxLabels := criDockerLabels(true, "api-7d9f", "prod", uid, "")
	sbxUpper := d.container(sbxID, sbxMnt, "k8s_POD_api-7d9f_prod_"+uid+"_0", sbxLabels, dockerState{Running: true, Pid: 5010}, nil)
	sbxMount := d.mount(sbxMnt, false)
	h.tmpfs(filepath.Join("/data/docker/containers", sbxID, "mounts/shm"))

	// A stopped plain-Docker container; its old pid is now another process's.
	batchID, batchMnt := hexID("d-batch"), hexID("d-batch-mount")
	batchUpper := d.container(batchID, batchMnt, "batch", map[string]string{"team": "data"}, dockerState{Pid: 0}, nil)

	// Hostile or broken metadata: each costs an error for its own container only.
	badJSON, badJSONMnt := hexID("d-badjson"), hexID("d-badjson-mount")
	badJSONUpper := d.container(badJSON, badJSONMnt, "", nil, dockerState{}, `{"ID": "`+badJSON+`", "Name": `)
	linkID, linkMnt := hexID("d-link"), hexID("d-link-mount")
	linkUpper := d.container(linkID, linkMnt, "", nil, dockerState{}, false)
	h.write("/etc/secret.json", `{"ID":"`+linkID+`","Name":"/stolen"}`)
	h.symlink("/etc/secret.json", filepath.Join("/data/docker/containers", linkID, "config.v2.json"))
	hugeID, hugeMnt := hexID("d-huge"), hexID("d-huge-mount")
	hugeUpper := d.container(hugeID, hugeMnt, "", nil, dockerState{}, `{"ID":"`+hugeID+`","Name":"/x","Pad":"`+strings.Repeat("a", 5<<20)+`"}`)
	otherID, otherMnt := hexID("d-other"), hexID("d-other-mount")
	otherUpper := d.container(otherID, otherMnt, "", nil, dockerState{}, `{"ID":"`+hexID("someone-else")+`","Name":"/x"}`)
	escID := hexID("d-escape")
	h.write(filepath.Join("/data/docker/image/overlay2/layerdb/mounts", escID, "mount-id"), "../../../../etc")
	goneID := hexID("d-gone") // layerdb entry whose layer was just removed
	h.write(filepath.Join("/data/docker/image/overlay2/layerdb/mounts", goneID, "mount-id"), hexID("d-gone-mount"))

	// A second data root named by daemon.json.
	h.write("/etc/docker/daemon.json", `{"data-root": "/srv/docker2", "log-driver": "json-file"}`)
	d2 := h.docker("/srv/docker2")
	oldID, oldMnt := hexID("d2-old"), hexID("d2-old-mount")
	oldUpper := d2.container(oldID, oldMnt, "old", nil, dockerState{}, nil)

	// A root whose path has a space, which mountinfo shows as \040.
	d3 := h.docker("/srv/my docker")
	spaceID, spaceMnt := hexID("d3-space"), hexID("d3-space-mount")
	spaceUpper := d3.container(spaceID, spaceMnt, "spaced", nil, dockerState{Running: true}, nil)
	spaceMount := d3.mount(spaceMnt, false)
	if !strings.Contains(spaceMount.String(), `/srv/my\040docker/overlay2/`) {
		t.Fatalf("fixture mount line not escaped: %s", spaceMount)
	}

	got, errs := h.discover(Options{})
	rt := v1alpha1.RuntimeDocker
	want := withHostRoot(h.root,
		Container{Runtime: rt, ID: appID, Running: true, Namespace: "prod", Pod: "api-7d9f", PodUID: uid, Name: "api",
			EngineRoot: "/data/docker", StorageID: appMnt, UpperDir: appUpper, MergedDir: appMount.MountPoint,
			MountDevice: appMount.Device(), Labels: appLabels, PIDs: []int{5001, 5002}},
		Container{Runtime: rt, ID: sbxID, Running: true, Namespace: "prod", Pod: "api-7d9f", PodUID: uid, Name: "POD", Sandbox: true,
			EngineRoot: "/data/docker", StorageID: sbxMnt, UpperDir: sbxUpper, MergedDir: sbxMount.MountPoint,
			MountDevice: sbxMount.Device(), Labels: sbxLabels},
		Container{Runtime: rt, ID: batchID, Name: "batch", EngineRoot: "/data/docker", StorageID: batchMnt, UpperDir: batchUpper,
			Labels: map[string]string{"team": "data"}},
		Container{Runtime: rt, ID: badJSON, EngineRoot: "/data/docker", StorageID: badJSONMnt, UpperDir: badJSONUpper},
		Container{Runtime: rt, ID: linkID, EngineRoot: "/data/docker", StorageID: linkMnt, UpperDir: linkUpper},
		Container{Runtime: rt, ID: hugeID, EngineRoot: "/data/docker", StorageID: hugeMnt, UpperDir: hugeUpper},
		Container{Runtime: rt, ID: otherID, EngineRoot: "/data/docker", StorageID: otherMnt, UpperDir: otherUpper},
		Container{Runtime: rt, ID: oldID, Name: "old", EngineRoot: "/srv/docker2", StorageID: oldMnt, UpperDir: oldUpper},
		Container{Runtime: rt, ID: spaceID, Running: true, Name: "spaced", EngineRoot: "/srv/my docker", StorageID: spaceMnt,
			UpperDir: spaceUpper, MergedDir: spaceMount.MountPoint, MountDevice: spaceMount.Device()},
	)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Discover (-want +got):\n%s", diff)
	}
	errorsMention(t, errs, badJSON, linkID, hugeID, otherID, escID, "symbolic link", "limit")
	if len(errs) != 5 {
		t.Errorf("want 5 errors, got %d: %v", len(errs), errs)
	}
	for _, e := range errs {
		var de *Error
		if !errors.As(e, &de) || de.Runtime != rt {
			t.Errorf("error %v is not a *discovery.Error for %s", e, rt)
		}
	}
}

func TestDiscoverContainersStorage(t *testing.T) {
	h := newHost(t)
	s := h.storage("/var/lib/containers/storage", "/run/containers/storage")
	s.selfBind()
	uid := "7a3e9d2c-1b4f-4c6e-8a5d-2f0e9b8c7d61"
	g, r := s.root, s.runroot

	// CRI-O: a running container and its sandbox (CRI-O marks its containers volatile).
	appID, appLayer := hexID("s-app"), hexID("s-app-layer")
	appAnn := crioAnnotations(false, "db-0", "data", uid, "postgres")
	appUpper := s.container(g, "volatile-containers.json", appID, appLayer, []string{"k8s_postgres_db-0_data_" + uid + "_0"},
		map[string]any{"pod-name": "db-0", "pod-id": hexID("s-sbx"), "name": "k8s_postgres_db-0_data_" + uid + "_0", "metadata-name": "postgres"})
	s.userdata(r, appID, appAnn, 6001)
	s.userdata(g, appID, appAnn, 0)
	appMount := s.mount(appLayer)
	h.process(6001, "1:name=systemd:/kubepods.slice/kubepods-pod.slice/crio-"+appID+".scope\n", appMount)
	// conmon: its cgroup names the container but it is excluded, whatever its root.
	h.process(6002, "1:name=systemd:/kubepods.slice/kubepods-pod.slice/crio-conmon-"+appID+".scope\n", h.hostRootMount())
	h.process(6003, "0::/kubepods.slice/crio-conmon-"+appID+".scope\n", appMount)

	sbxID, sbxLayer := hexID("s-sbx"), hexID("s-sbx-layer")
	sbxAnn := crioAnnotations(true, "db-0", "data", uid, "")
	sbxUpper := s.container(g, "volatile-containers.json", sbxID, sbxLayer, []string{"k8s_POD_db-0_data_" + uid + "_0"},
		map[string]any{"pod": true, "pod-name": "db-0", "pod-id": sbxID, "uid": uid, "namespace": "data", "metadata-name": "db-0"})
	s.userdata(r, sbxID, sbxAnn, 6010)
	sbxMount := s.mount(sbxLayer)
	h.tmpfs(filepath.Join(r, "overlay-containers", sbxID, "userdata", "shm"))

	// A stopped CRI-O container after a reboot: only the graph root copy of config.json.
	oldID, oldLayer := hexID("s-old"), hexID("s-old-layer")
	oldAnn := crioAnnotations(false, "db-0", "data", uid, "migrate")
	oldUpper := s.container(g, "volatile-containers.json", oldID, oldLayer, nil, map[string]any{"pod-name": "db-0", "metadata-name": "migrate"})
	s.userdata(g, oldID, oldAnn, 0)

	// A CRI-O container with no config.json anywhere: identity from the list's metadata.
	mdID, mdLayer := hexID("s-md"), hexID("s-md-layer")
	mdUpper := s.container(g, "volatile-containers.json", mdID, mdLayer, nil, map[string]any{"pod-name": "db-1", "metadata-name": "sidecar"})

	// podman: a stopped container known by its name.
	podID, podLayer := hexID("s-podman"), hexID("s-podman-layer")
	podAnn := map[string]string{"io.container.manager": "libpod", "org.opencontainers.image.stopSignal": "15"}
	podUpper := s.container(g, "containers.json", podID, podLayer, []string{"web", "web-alias"}, map[string]any{"name": "web", "image-name": "localhost/app:1"})
	s.userdata(g, podID, podAnn, 0)
	h.write(filepath.Join(r, "overlay-containers", podID, "userdata", "pidfile"), "6040") // stale
	h.process(6040, "0::/user.slice\n", h.hostRootMount())

	// transient_store: the list under the run root, the layer in the graph root.
	trID, trLayer := hexID("s-transient"), hexID("s-transient-layer")
	trUpper := s.container(r, "volatile-containers.json", trID, trLayer, []string{"tr"}, nil)

	// Broken entries.
	hugeID, hugeLayer := hexID("s-huge"), hexID("s-huge-layer")
	hugeUpper := s.container(g, "containers.json", hugeID, hugeLayer, []string{"huge"}, nil)
	h.write(filepath.Join(g, "overlay-containers", hugeID, "userdata", "config.json"), `{"annotations":{"a":"`+strings.Repeat("b", 5<<20)+`"}}`)
	s.container(g, "containers.json", "../../etc", hexID("s-x"), nil, nil)
	goneID := hexID("s-gone")
	s.lists[filepath.Join(g, "overlay-containers", "containers.json")] = append(s.lists[filepath.Join(g, "overlay-containers", "containers.json")],
		map[string]any{"id": goneID, "layer": hexID("s-gone-layer")})
	h.writeJSON(filepath.Join(g, "overlay-containers", "containers.json"), s.lists[filepath.Join(g, "overlay-containers", "containers.json")])

	got, errs := h.discover(Options{})
	rt := v1alpha1.RuntimeContainersStorage
	want := withHostRoot(h.root,
		Container{Runtime: rt, ID: appID, Running: true, Namespace: "data", Pod: "db-0", PodUID: uid, Name: "postgres",
			EngineRoot: g, StorageID: appLayer, UpperDir: appUpper, MergedDir: appMount.MountPoint, MountDevice: appMount.Device(),
			Labels:      map[string]string{labelPodName: "db-0", labelPodNamespace: "data", labelPodUID: uid, labelContainerName: "postgres"},
			Annotations: appAnn, PIDs: []int{6001}},
		Container{Runtime: rt, ID: sbxID, Running: true, Namespace: "data", Pod: "db-0", PodUID: uid, Name: "POD", Sandbox: true,
			EngineRoot: g, StorageID: sbxLayer, UpperDir: sbxUpper, MergedDir: sbxMount.MountPoint, MountDevice: sbxMount.Device(),
			Labels:      map[string]string{labelPodName: "db-0", labelPodNamespace: "data", labelPodUID: uid, labelContainerName: "POD"},
			Annotations: sbxAnn},
		Container{Runtime: rt, ID: oldID, Namespace: "data", Pod: "db-0", PodUID: uid, Name: "migrate",
			EngineRoot: g, StorageID: oldLayer, UpperDir: oldUpper,
			Labels:      map[string]string{labelPodName: "db-0", labelPodNamespace: "data", labelPodUID: uid, labelContainerName: "migrate"},
			Annotations: oldAnn},
		Container{Runtime: rt, ID: mdID, Pod: "db-1", Name: "sidecar", EngineRoot: g, StorageID: mdLayer, UpperDir: mdUpper},
		Container{Runtime: rt, ID: podID, Name: "web", EngineRoot: g, StorageID: podLayer, UpperDir: podUpper, Annotations: podAnn},
		Container{Runtime: rt, ID: trID, Name: "tr", EngineRoot: g, StorageID: trLayer, UpperDir: trUpper},
		Container{Runtime: rt, ID: hugeID, Name: "huge", EngineRoot: g, StorageID: hugeLayer, UpperDir: hugeUpper},
	)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Discover (-want +got):\n%s", diff)
	}
	errorsMention(t, errs, hugeID, "../../etc")
	if len(errs) != 2 {
		t.Errorf("want 2 errors, got %d: %v", len(errs), errs)
	}
	for _, c := range got {
		if K8sContainerID(c) != "cri-o://"+c.ID {
			t.Errorf("K8sContainerID = %q", K8sContainerID(c))
		}
	}
}

func TestDiscoverRuntimeFilterAndSymlinkedRoot(t *testing.T) {
	h := newHost(t)
	// /var/lib/docker is an absolute symlink, to be resolved inside HostRoot.
	d := h.docker("/mnt/disk1/docker")
	h.symlink("/mnt/disk1/docker", "/var/lib/docker")
	dockerID := hexID("f-docker")
	d.container(dockerID, hexID("f-docker-mount"), "one", nil, dockerState{}, nil)
	s := h.storage("/var/lib/containers/storage", "/run/containers/storage")
	s.container(s.root, "containers.json", hexID("f-podman"), hexID("f-podman-layer"), []string{"p"}, nil)

	got, errs := h.discover(Options{Runtimes: []v1alpha1.Runtime{v1alpha1.RuntimeDocker}})
	if len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
	if len(got) != 1 || got[0].ID != dockerID || got[0].UpperDir != filepath.Join("/mnt/disk1/docker/overlay2", hexID("f-docker-mount"), "diff") {
		t.Fatalf("Discover(docker only) = %+v", got)
	}
	all, _ := h.discover(Options{})
	if len(all) != 2 {
		t.Errorf("Discover(all) found %d containers, want 2", len(all))
	}
}

func TestDiscoverHostileInput(t *testing.T) {
	t.Run("no mount table", func(t *testing.T) {
		got, errs := Discover(t.Context(), Options{HostRoot: t.TempDir()})
		if len(got) != 0 || len(errs) == 0 {
			t.Fatalf("Discover = %v, %v; want nothing and an error", got, errs)
		}
		if !errors.Is(errs[0], fs.ErrNotExist) {
			t.Errorf("error %v does not wrap ErrNotExist", errs[0])
		}
	})
	t.Run("garbage everywhere", func(t *testing.T) {
		h := newHost(t)
		s := h.storage("/var/lib/containers/storage", "/run/containers/storage")
		h.write(filepath.Join(s.root, "overlay-containers", "containers.json"), "[{\"id\": 12}")
		h.write(filepath.Join(s.runroot, "overlay-containers", "volatile-containers.json"), "null")
		h.symlink("/etc", filepath.Join(s.root, "overlay-containers", "volatile-containers.json"))
		d := h.docker("/var/lib/docker")
		h.symlink("/etc", filepath.Join(d.root, "image/overlay2/layerdb/mounts", hexID("g-link")))
		ctd := h.containerd("/var/lib/containerd", "/run/containerd")
		m, _, _ := ctd.running("k8s.io", hexID("g-ctd"), nil, 0, false)
		h.write(filepath.Join(ctd.state, "io.containerd.runtime.v2.task/k8s.io", hexID("g-ctd"), "config.json"), "\x00\xff{")
		h.write(filepath.Join(ctd.state, "io.containerd.runtime.v2.task/k8s.io", hexID("g-ctd"), "init.pid"), "-1\n")
		// A relative upperdir where containerd never uses one.
		h.overlay("/run/containerd/io.containerd.runtime.v2.task/k8s.io/rel/rootfs", []string{"1/fs"}, "2/fs", "2/work")
		h.writeMountInfo("not a mount line", "1 2 3:4")
		got, errs := Discover(t.Context(), Options{HostRoot: h.root})
		if len(got) != 1 || got[0].ID != hexID("g-ctd") || got[0].MountDevice != m.Device() {
			t.Errorf("Discover = %+v, want only the containerd container", got)
		}
		errorsMention(t, errs, "mountinfo line", "containers.json", "volatile-containers.json", hexID("g-ctd"), "relative")
	})
}

func TestCgroupKeys(t *testing.T) {
	id := hexID("cg")
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"cgroupfs v1", "4:memory:/kubepods/burstable/pod1/" + id + "\n", true},
		{"systemd v2 containerd", "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-" + id + ".scope\n", true},
		{"docker cgroupfs", "9:name=systemd:/docker/" + id + "\n", true},
		{"docker systemd", "0::/system.slice/docker-" + id + ".scope\n", true},
		{"crio", "0::/kubepods.slice/crio-" + id + ".scope/container\n", true},
		{"podman cgroupfs", "0::/libpod_parent/libpod-" + id + "\n", true},
		{"nested below the container", "0::/docker/" + id + "/init.scope\n", true},
		{"outside our cgroup namespace", "0::/../../kubepods/" + id + "\n", true},
		{"crio conmon", "0::/kubepods.slice/crio-conmon-" + id + ".scope\n", false},
		{"podman conmon", "0::/machine.slice/libpod-conmon-" + id + ".scope\n", false},
		{"other container", "0::/docker/" + hexID("other") + "\n", false},
		{"ID prefix only", "0::/docker/" + id[:12] + "\n", false},
		{"malformed", "garbage\n\n::\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := cgroupKeys([]byte(tt.in))
			got := false
			for _, k := range keys {
				got = got || k == id
			}
			if got != tt.want {
				t.Errorf("cgroupKeys(%q) names the ID: %v, want %v (keys %q)", tt.in, got, tt.want, keys)
			}
		})
	}
}

func TestMatchTail(t *testing.T) {
	tests := []struct {
		p      string
		tail   []string
		prefix string
		wild   []string
		ok     bool
	}{
		{"/var/lib/docker/overlay2/abc/merged", []string{"overlay2", "*", "merged"}, "/var/lib/docker", []string{"abc"}, true},
		{"/overlay2/abc/merged", []string{"overlay2", "*", "merged"}, "", nil, false},
		{"/a/overlay2/abc/diff", []string{"overlay2", "*", "merged"}, "", nil, false},
		{"relative/overlay2/abc/merged", []string{"overlay2", "*", "merged"}, "", nil, false},
		{"/a/b/../overlay2/x/merged", []string{"overlay2", "*", "merged"}, "/a", []string{"x"}, true},
	}
	for _, tt := range tests {
		prefix, wild, ok := matchTail(tt.p, tt.tail...)
		if prefix != tt.prefix || ok != tt.ok || !cmp.Equal(wild, tt.wild, cmpopts.EquateEmpty()) {
			t.Errorf("matchTail(%q) = %q, %q, %v", tt.p, prefix, wild, ok)
		}
	}
}

func TestHostFSRefusesLinksAndLimits(t *testing.T) {
	h := newHost(t)
	h.write("/meta/ok.json", "{}")
	h.write("/meta/big.json", strings.Repeat("x", 100))
	h.symlink("/meta/ok.json", "/meta/link.json")
	h.symlink("/meta", "/linkdir")
	h.mkdir("/meta/dir")
	fsys := hostFS{root: h.root}
	if b, err := fsys.readFile("/meta/ok.json", 10); err != nil || string(b) != "{}" {
		t.Errorf("readFile(ok) = %q, %v", b, err)
	}
	for _, tc := range []struct {
		p    string
		want string
	}{
		{"/meta/big.json", "limit"},
		{"/meta/link.json", "symbolic link"},
		{"/linkdir/ok.json", "symbolic link"},
		{"/meta/dir", "not a regular file"},
		{"/meta/missing", "no such file"},
		{"relative", "not absolute"},
	} {
		if _, err := fsys.readFile(tc.p, 10); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("readFile(%q) error = %v, want %q", tc.p, err, tc.want)
		}
	}
	if c, err := fsys.canonical("/linkdir/../linkdir/dir"); err != nil || c != "/meta/dir" {
		t.Errorf("canonical = %q, %v", c, err)
	}
	h.symlink("../../../../../meta", "/escape")
	if c, err := fsys.canonical("/escape/dir"); err != nil || c != "/meta/dir" {
		t.Errorf("canonical(escape) = %q, %v; a relative link must not leave HostRoot", c, err)
	}
	h.symlink("/loop2", "/loop1")
	h.symlink("/loop1", "/loop2")
	if _, err := fsys.canonical("/loop1"); err == nil {
		t.Error("canonical of a symlink loop succeeded")
	}
}

func TestFilesystems(t *testing.T) {
	h := newHost(t)
	h.mkdir("/var/lib/docker/overlay2/a/diff")
	h.mkdir("/var/lib/docker/overlay2/b/diff")
	h.write("/var/lib/docker/overlay2/file", "not a layer directory")
	cs := []Container{
		{ID: "a", UpperDir: "/var/lib/docker/overlay2/a/diff", HostRoot: h.root},
		{ID: "b", UpperDir: "/var/lib/docker/overlay2/b/diff", HostRoot: h.root},
		// Removed since it was measured: nothing to say about it.
		{ID: "gone", UpperDir: "/var/lib/docker/overlay2/gone/diff", HostRoot: h.root},
		// Not a directory where one is expected: a problem.
		{ID: "odd", UpperDir: "/var/lib/docker/overlay2/file/diff", HostRoot: h.root},
	}
	fss, errs := StatFilesystems(cs)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "odd") || !strings.Contains(errs[0].Error(), "not a directory") {
		t.Errorf("errors = %v, want one for the upperdir under a file and none for the removed one", errs)
	}
	if len(fss) != 1 {
		t.Fatalf("StatFilesystems = %+v, want one filesystem", fss)
	}
	fs := fss[0]
	if fs.Containers != 2 || fs.CapacityBytes <= 0 || fs.AvailableBytes <= 0 || fs.AvailableBytes > fs.CapacityBytes || fs.Device == "" {
		t.Errorf("filesystem = %+v", fs)
	}
	if len(Filesystems(cs)) != 1 {
		t.Error("Filesystems differs from StatFilesystems")
	}
}
