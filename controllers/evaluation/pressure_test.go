package evaluation

import (
	"fmt"
	"slices"
	"testing"

	"k8s.io/utils/ptr"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

func cand(id string, bytes, offloadable int64, margin int32) Candidate {
	return Candidate{ContainerID: id, Namespace: "default", Pod: id, Container: "app", Filesystem: testFS,
		Bytes: bytes, OffloadableBytes: offloadable, MinAvailablePercent: margin}
}

func byteEsc(state v1alpha1.LayerState, before int64) Escalation {
	return Escalation{Resource: PressureBytes, State: state, AvailableBefore: before}
}

func victim(c Candidate, fs v1alpha1.FilesystemUsage, es ...Escalation) Victim {
	v := Victim{Candidate: c, FilesystemUsage: fs, Kubelet: DefaultKubeletThresholds().For(fs), State: v1alpha1.StateOK, Escalations: es}
	for _, e := range es {
		if StateRank(e.State) > StateRank(v.State) {
			v.State = e.State
		}
	}
	return v
}

func TestPlanNodePressure(t *testing.T) {
	short := fsUsage(8*Gi, 500_000) // 15% of 100Gi is 15Gi: 7Gi short
	other := v1alpha1.FilesystemUsage{Path: "/var/lib/docker", CapacityBytes: 100 * Gi, AvailableBytes: 50 * Gi}
	inodeShort := fsUsage(50*Gi, 50_000) // 10% of 1,000,000 inodes is 100,000: 50,000 short
	manyFiles := Candidate{ContainerID: "many", Filesystem: testFS, Bytes: Gi, Inodes: 80_000, OffloadableFiles: 70_000,
		MinAvailablePercent: 5, MinInodesFreePercent: 10}
	fewFiles := Candidate{ContainerID: "few", Filesystem: testFS, Bytes: 10 * Gi, Inodes: 1_000, MinAvailablePercent: 5, MinInodesFreePercent: 10}
	cases := map[string]struct {
		fss   []v1alpha1.FilesystemUsage
		cands []Candidate
		want  []Victim // nil: no plan
	}{
		"no candidates": {
			fss: []v1alpha1.FilesystemUsage{short},
		},
		"margin holds": {
			fss:   []v1alpha1.FilesystemUsage{fsUsage(20*Gi, 0)},
			cands: []Candidate{cand("a", 10*Gi, 8*Gi, 15)},
		},
		"free space exactly at the margin holds": {
			fss:   []v1alpha1.FilesystemUsage{fsUsage(15*Gi, 0)},
			cands: []Candidate{cand("a", 10*Gi, 8*Gi, 15)},
		},
		"the largest offload covers the deficit": {
			fss:   []v1alpha1.FilesystemUsage{short},
			cands: []Candidate{cand("b", 5*Gi, 4*Gi, 15), cand("a", 10*Gi, 8*Gi, 15)},
			want:  []Victim{victim(cand("a", 10*Gi, 8*Gi, 15), short, byteEsc(v1alpha1.StateOffload, 8*Gi))},
		},
		"two offloads needed": {
			fss:   []v1alpha1.FilesystemUsage{short},
			cands: []Candidate{cand("a", 10*Gi, 4*Gi, 15), cand("b", 5*Gi, 4*Gi, 15), cand("c", 4*Gi, 4*Gi, 15)},
			want: []Victim{
				victim(cand("a", 10*Gi, 4*Gi, 15), short, byteEsc(v1alpha1.StateOffload, 8*Gi)),
				victim(cand("b", 5*Gi, 4*Gi, 15), short, byteEsc(v1alpha1.StateOffload, 12*Gi)),
			},
		},
		"offloads fall short: the largest also restarts": {
			fss:   []v1alpha1.FilesystemUsage{short},
			cands: []Candidate{cand("a", 10*Gi, 2*Gi, 15), cand("b", 5*Gi, Gi, 15), cand("c", 3*Gi, 0, 15)},
			want: []Victim{
				victim(cand("a", 10*Gi, 2*Gi, 15), short, byteEsc(v1alpha1.StateOffload, 8*Gi), byteEsc(v1alpha1.StateRestart, 11*Gi)),
				victim(cand("b", 5*Gi, Gi, 15), short, byteEsc(v1alpha1.StateOffload, 10*Gi)),
			},
		},
		"a restart counts only what its offload did not already free": {
			fss:   []v1alpha1.FilesystemUsage{short},
			cands: []Candidate{cand("a", 6*Gi, 3*Gi, 15), cand("b", 4*Gi, 0, 15)},
			want: []Victim{
				victim(cand("a", 6*Gi, 3*Gi, 15), short, byteEsc(v1alpha1.StateOffload, 8*Gi), byteEsc(v1alpha1.StateRestart, 11*Gi)),
				victim(cand("b", 4*Gi, 0, 15), short, byteEsc(v1alpha1.StateRestart, 14*Gi)),
			},
		},
		"nothing offloadable: restarts, largest first, until covered": {
			fss:   []v1alpha1.FilesystemUsage{short},
			cands: []Candidate{cand("a", 4*Gi, 0, 15), cand("b", 5*Gi, 0, 15), cand("c", Gi, 0, 15)},
			want: []Victim{
				victim(cand("b", 5*Gi, 0, 15), short, byteEsc(v1alpha1.StateRestart, 8*Gi)),
				victim(cand("a", 4*Gi, 0, 15), short, byteEsc(v1alpha1.StateRestart, 13*Gi)),
			},
		},
		"offloadable figure above the layer size is capped": {
			fss:   []v1alpha1.FilesystemUsage{short},
			cands: []Candidate{cand("a", 2*Gi, 9*Gi, 15), cand("b", Gi, 0, 15)},
			want: []Victim{
				victim(cand("a", 2*Gi, 9*Gi, 15), short, byteEsc(v1alpha1.StateOffload, 8*Gi), byteEsc(v1alpha1.StateRestart, 10*Gi)),
				victim(cand("b", Gi, 0, 15), short, byteEsc(v1alpha1.StateRestart, 10*Gi)),
			},
		},
		"candidates without a margin are never picked": {
			fss:   []v1alpha1.FilesystemUsage{short},
			cands: []Candidate{cand("huge", 50*Gi, 40*Gi, 0), cand("a", 10*Gi, 8*Gi, 15)},
			want:  []Victim{victim(cand("a", 10*Gi, 8*Gi, 15), short, byteEsc(v1alpha1.StateOffload, 8*Gi))},
		},
		"a candidate whose own margin is covered is spared": {
			fss:   []v1alpha1.FilesystemUsage{short},
			cands: []Candidate{cand("wide", 10*Gi, 8*Gi, 20), cand("narrow", 9*Gi, 6*Gi, 10)},
			want: []Victim{
				victim(cand("wide", 10*Gi, 8*Gi, 20), short, byteEsc(v1alpha1.StateOffload, 8*Gi), byteEsc(v1alpha1.StateRestart, 16*Gi)),
			},
		},
		"same size: container ID decides the order": {
			fss:   []v1alpha1.FilesystemUsage{short},
			cands: []Candidate{cand("b", 10*Gi, 8*Gi, 15), cand("a", 10*Gi, 8*Gi, 15)},
			want:  []Victim{victim(cand("a", 10*Gi, 8*Gi, 15), short, byteEsc(v1alpha1.StateOffload, 8*Gi))},
		},
		"inode deficit picks the container with the most inodes": {
			fss:   []v1alpha1.FilesystemUsage{inodeShort},
			cands: []Candidate{fewFiles, manyFiles},
			want: []Victim{victim(manyFiles, inodeShort,
				Escalation{Resource: PressureInodes, State: v1alpha1.StateOffload, AvailableBefore: 50_000})},
		},
		"filesystems without fixed inodes ignore inode margins": {
			fss:   []v1alpha1.FilesystemUsage{{Path: testFS, CapacityBytes: 100 * Gi, AvailableBytes: 50 * Gi}},
			cands: []Candidate{fewFiles, manyFiles},
		},
		"each filesystem on its own": {
			fss: []v1alpha1.FilesystemUsage{other, short},
			cands: []Candidate{
				{ContainerID: "docker", Filesystem: "/var/lib/docker", Bytes: 20 * Gi, OffloadableBytes: 20 * Gi, MinAvailablePercent: 15},
				{ContainerID: "nowhere", Filesystem: "", Bytes: 20 * Gi, OffloadableBytes: 20 * Gi, MinAvailablePercent: 15},
				cand("a", 10*Gi, 8*Gi, 15),
			},
			want: []Victim{victim(cand("a", 10*Gi, 8*Gi, 15), short, byteEsc(v1alpha1.StateOffload, 8*Gi))},
		},
		"one filesystem: candidates without a filesystem are on it": {
			fss:   []v1alpha1.FilesystemUsage{short},
			cands: []Candidate{{ContainerID: "a", Bytes: 10 * Gi, OffloadableBytes: 8 * Gi, MinAvailablePercent: 15}},
			want: []Victim{victim(Candidate{ContainerID: "a", Bytes: 10 * Gi, OffloadableBytes: 8 * Gi, MinAvailablePercent: 15},
				short, byteEsc(v1alpha1.StateOffload, 8*Gi))},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			plan := PlanNodePressure(tc.fss, tc.cands, DefaultKubeletThresholds())
			if tc.want == nil {
				if plan != nil {
					t.Fatalf("PlanNodePressure() = %+v, want no plan", plan.Victims)
				}
				return
			}
			if plan == nil {
				t.Fatalf("PlanNodePressure() = nil, want %d victims", len(tc.want))
			}
			if d := diffOf(tc.want, plan.Victims); d != "" {
				t.Errorf("PlanNodePressure() victims mismatch (-want +got):\n%s", d)
			}
			for _, v := range tc.want {
				if got := plan.Victim(v.ContainerID); got == nil || got.ContainerID != v.ContainerID {
					t.Errorf("Victim(%q) = %v, want the victim", v.ContainerID, got)
				}
			}
			if got := plan.Victim("not-a-victim"); got != nil {
				t.Errorf("Victim(not-a-victim) = %v, want nil", got)
			}
		})
	}
}

func TestNilPlanHasNoVictims(t *testing.T) {
	var p *NodePressurePlan
	if got := p.Victim("a"); got != nil {
		t.Errorf("nil plan Victim() = %v, want nil", got)
	}
}

func TestVictimStateFor(t *testing.T) {
	fs := fsUsage(8*Gi, 50_000)
	v := victim(cand("a", 10*Gi, 8*Gi, 20), fs,
		byteEsc(v1alpha1.StateOffload, 8*Gi),
		byteEsc(v1alpha1.StateRestart, 16*Gi),
		Escalation{Resource: PressureInodes, State: v1alpha1.StateOffload, AvailableBefore: 50_000})
	cases := map[string]struct {
		np           v1alpha1.NodePressure
		want         v1alpha1.LayerState
		wantByInodes bool
	}{
		"margin below the free space: no escalation": {np: v1alpha1.NodePressure{MinAvailablePercent: 5}, want: v1alpha1.StateOK},
		"margin needing the offload only":            {np: v1alpha1.NodePressure{MinAvailablePercent: 10}, want: v1alpha1.StateOffload},
		"margin exactly at the projected space after the offload": {
			np: v1alpha1.NodePressure{MinAvailablePercent: 16}, want: v1alpha1.StateOffload},
		"margin needing the restart too": {np: v1alpha1.NodePressure{MinAvailablePercent: 20}, want: v1alpha1.StateRestart},
		"inode margin only": {
			np:   v1alpha1.NodePressure{MinAvailablePercent: 5, MinInodesFreePercent: ptr.To[int32](10)},
			want: v1alpha1.StateOffload, wantByInodes: true},
		"both at the same state: bytes explain it": {
			np:   v1alpha1.NodePressure{MinAvailablePercent: 10, MinInodesFreePercent: ptr.To[int32](10)},
			want: v1alpha1.StateOffload},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, byInodes := v.stateFor(&tc.np)
			if got != tc.want || byInodes != tc.wantByInodes {
				t.Errorf("stateFor() = %s, byInodes %v; want %s, %v", got, byInodes, tc.want, tc.wantByInodes)
			}
		})
	}
}

func TestNodeCandidates(t *testing.T) {
	pressure := makePolicy("p").NodePressure(15).ShipTo("/logs")
	cases := map[string]struct {
		policies []*v1alpha1.LayerPolicy
		pod      PodFigures
		want     []Candidate
	}{
		"no policy with nodePressure": {
			policies: policies(makePolicy("p").Warn("1Gi").ShipTo("/logs")),
			pod:      makePod("web").Container("app", 10*Gi).Obj(),
		},
		"held bytes include deleted-but-open files; nested hot paths count once": {
			policies: policies(pressure),
			pod: makePod("web").Container("app", 10*Gi).DeletedOpen(Gi).Inodes(500).
				HotFiles("/logs", 6*Gi, 100).HotFiles("/logs/today", 5*Gi, 60).HotFiles("/tmp", 3*Gi, 9).Obj(),
			want: []Candidate{{ContainerID: "web-app", Namespace: "default", Pod: "web", Container: "app", Filesystem: testFS,
				Bytes: 11 * Gi, Inodes: 500, OffloadableBytes: 6 * Gi, OffloadableFiles: 100, MinAvailablePercent: 15}},
		},
		"only measured subdirectories of a hot path: their sum": {
			policies: policies(pressure),
			pod:      makePod("web").Container("app", 10*Gi).Hot("/logs/a", 2*Gi).Hot("/logs/b", 3*Gi).Hot("/logsx", 4*Gi).Obj(),
			want: []Candidate{{ContainerID: "web-app", Namespace: "default", Pod: "web", Container: "app", Filesystem: testFS,
				Bytes: 10 * Gi, OffloadableBytes: 5 * Gi, MinAvailablePercent: 15}},
		},
		"archive-only hot paths free nothing": {
			policies: policies(makePolicy("p").NodePressure(15).ShipTo("/logs").ArchiveOnly()),
			pod:      makePod("web").Container("app", 10*Gi).Hot("/logs", 6*Gi).Obj(),
			want: []Candidate{{ContainerID: "web-app", Namespace: "default", Pod: "web", Container: "app", Filesystem: testFS,
				Bytes: 10 * Gi, MinAvailablePercent: 15}},
		},
		"a policy without a bucket cannot offload": {
			policies: policies(makePolicy("p").NodePressure(15)),
			pod:      makePod("web").Container("app", 10*Gi).Hot("/logs", 6*Gi).Obj(),
			want: []Candidate{{ContainerID: "web-app", Namespace: "default", Pod: "web", Container: "app", Filesystem: testFS,
				Bytes: 10 * Gi, MinAvailablePercent: 15}},
		},
		"largest margins and the union of hot paths across policies": {
			policies: policies(
				makePolicy("a").NodePressure(12).InodeMargin(8).ShipTo("/logs"),
				makePolicy("b").NodePressure(20).ShipTo("/var/log"),
				makePolicy("c").Warn("1Gi").ShipTo("/tmp"), // no nodePressure: its hot paths do not count
			),
			pod: makePod("web").Container("app", 10*Gi).Hot("/logs", 2*Gi).Hot("/var/log", 3*Gi).Hot("/tmp", 4*Gi).Obj(),
			want: []Candidate{{ContainerID: "web-app", Namespace: "default", Pod: "web", Container: "app", Filesystem: testFS,
				Bytes: 10 * Gi, OffloadableBytes: 5 * Gi, MinAvailablePercent: 20, MinInodesFreePercent: 8}},
		},
		"spec.containers, stopped containers and containers without an ID are left out": {
			policies: policies(makePolicy("p").NodePressure(15).Containers("app", "old")),
			pod: func() PodFigures {
				p := makePod("web").Container("app", Gi).Container("sidecar", 9*Gi).Container("old", 9*Gi).Stopped().
					Container("app", 2*Gi).Obj()
				p.Containers[3].ContainerID = ""
				return p
			}(),
			want: []Candidate{{ContainerID: "web-app", Namespace: "default", Pod: "web", Container: "app", Filesystem: testFS,
				Bytes: Gi, MinAvailablePercent: 15}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if d := diffOf(tc.want, NodeCandidates(tc.pod, tc.policies)); d != "" {
				t.Errorf("NodeCandidates() mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestPressureDeficit(t *testing.T) {
	cases := map[string]struct {
		fs                    v1alpha1.FilesystemUsage
		np                    *v1alpha1.NodePressure
		wantBytes, wantInodes int64
	}{
		"no nodePressure":   {fs: fsUsage(0, 0)},
		"margin holds":      {fs: fsUsage(20*Gi, 900_000), np: &v1alpha1.NodePressure{MinAvailablePercent: 15}},
		"exactly at margin": {fs: fsUsage(15*Gi, 0), np: &v1alpha1.NodePressure{MinAvailablePercent: 15}},
		"short of bytes": {fs: fsUsage(8*Gi, 0), np: &v1alpha1.NodePressure{MinAvailablePercent: 15},
			wantBytes: 7 * Gi},
		"short of inodes": {fs: fsUsage(50*Gi, 30_000), np: &v1alpha1.NodePressure{MinAvailablePercent: 15, MinInodesFreePercent: ptr.To[int32](5)},
			wantInodes: 20_000},
		"inodes on a filesystem without fixed inodes": {
			fs: v1alpha1.FilesystemUsage{CapacityBytes: 100 * Gi, AvailableBytes: 50 * Gi},
			np: &v1alpha1.NodePressure{MinAvailablePercent: 15, MinInodesFreePercent: ptr.To[int32](5)}},
		"capacity not divisible by 100": {
			fs: v1alpha1.FilesystemUsage{CapacityBytes: 1999, AvailableBytes: 0}, np: &v1alpha1.NodePressure{MinAvailablePercent: 10},
			wantBytes: 199},
		"petabyte filesystem does not overflow": {
			fs: v1alpha1.FilesystemUsage{CapacityBytes: 8 << 50, AvailableBytes: 0}, np: &v1alpha1.NodePressure{MinAvailablePercent: 99},
			wantBytes: 8917127262193582}, // floor(2^53 * 99 / 100)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b, i := PressureDeficit(tc.fs, tc.np)
			if b != tc.wantBytes || i != tc.wantInodes {
				t.Errorf("PressureDeficit() = %d bytes, %d inodes; want %d, %d", b, i, tc.wantBytes, tc.wantInodes)
			}
		})
	}
}

func TestValidateNodePressure(t *testing.T) {
	const why = ", or the kubelet evicts pods before layerkeeper acts"
	th := func(nodefs, nodefsInodes, imagefs, imagefsInodes string) KubeletThresholds {
		t.Helper()
		out, err := KubeletThresholdsOf(&v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile,
			NodefsAvailable: nodefs, NodefsInodesFree: nodefsInodes, ImagefsAvailable: imagefs, ImagefsInodesFree: imagefsInodes})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	fs := func(path string, capacity, inodes int64, kfs v1alpha1.KubeletFilesystem) v1alpha1.FilesystemUsage {
		return v1alpha1.FilesystemUsage{Path: path, CapacityBytes: capacity, AvailableBytes: capacity / 2, Inodes: inodes, InodesFree: inodes / 2, KubeletFilesystem: kfs}
	}
	root := fs("/", 100*Gi, 1_000_000, v1alpha1.KubeletNodefs)
	node := func(name string, t KubeletThresholds, fss ...v1alpha1.FilesystemUsage) NodeKubelet {
		return NodeKubelet{Node: name, Thresholds: t, Reported: true, Filesystems: fss}
	}
	many := func(n int) []NodeKubelet {
		var out []NodeKubelet
		for i := range n {
			out = append(out, node(fmt.Sprintf("node-%d", i), th("15%", "5%", "15%", "5%"), root))
		}
		return out
	}
	cases := map[string]struct {
		policy *v1alpha1.LayerPolicy
		nodes  []NodeKubelet
		want   string // "" for no error
	}{
		"nil policy":      {},
		"no nodePressure": {policy: makePolicy("p").Obj(), nodes: many(1)},

		// No node reports: the kubelet's defaults, as before nodes reported their own.
		"no node: above the default": {policy: makePolicy("p").NodePressure(11).InodeMargin(6).Obj()},
		"no node: at the default 10%": {
			policy: makePolicy("p").NodePressure(10).Obj(),
			want:   "spec.nodePressure.minAvailablePercent (10%) must be above the kubelet's eviction threshold (nodefs.available 10%, the kubelet's default; no node running a selected pod reports its own)" + why,
		},
		"no node: both margins too low": {
			policy: makePolicy("p").NodePressure(3).InodeMargin(5).Obj(),
			want: "spec.nodePressure.minAvailablePercent (3%) must be above the kubelet's eviction threshold (nodefs.available 10%, the kubelet's default; no node running a selected pod reports its own)" + why + "\n" +
				"spec.nodePressure.minInodesFreePercent (5%) must be above the kubelet's eviction threshold (nodefs.inodesFree 5%, the kubelet's default; no node running a selected pod reports its own)" + why,
		},

		"a node's own threshold above the margin": {
			policy: makePolicy("p").NodePressure(12).Obj(),
			nodes:  []NodeKubelet{node("node-a", th("12.5%", "5%", "15%", "5%"), root)},
			want:   "spec.nodePressure.minAvailablePercent (12%) must be above the kubelet's eviction threshold" + why + "; it is not on 1 of the 1 nodes running selected pods: node-a (nodefs.available 12.5%)",
		},
		"a node's own threshold below the default holds a lower margin": {
			policy: makePolicy("p").NodePressure(6).Obj(),
			nodes:  []NodeKubelet{node("node-a", th("5%", "5%", "15%", "5%"), root)},
		},
		"a node reporting no thresholds counts with the defaults": {
			policy: makePolicy("p").NodePressure(8).Obj(),
			nodes:  []NodeKubelet{{Node: "old-agent", Thresholds: DefaultKubeletThresholds(), Filesystems: []v1alpha1.FilesystemUsage{root}}},
			want:   "spec.nodePressure.minAvailablePercent (8%) must be above the kubelet's eviction threshold" + why + "; it is not on 1 of the 1 nodes running selected pods: old-agent (nodefs.available 10%, the kubelet's default)",
		},
		"a kubelet without hard eviction thresholds takes any margin": {
			policy: makePolicy("p").NodePressure(1).InodeMargin(1).Obj(),
			nodes:  []NodeKubelet{node("node-a", KubeletThresholds{}, root)},
		},
		"some nodes but not others: the nodes named, with the filesystem a quantity is measured on": {
			policy: makePolicy("p").NodePressure(12).Obj(),
			nodes: []NodeKubelet{
				node("node-a", th("15%", "5%", "15%", "5%"), root),
				node("node-b", th("10%", "5%", "15%", "5%"), root),
				node("node-c", th("10%", "5%", "2Gi", "5%"), root, fs("/var/lib/containerd", 10*Gi, 0, v1alpha1.KubeletImagefs)),
			},
			want: "spec.nodePressure.minAvailablePercent (12%) must be above the kubelet's eviction threshold" + why +
				"; it is not on 2 of the 3 nodes running selected pods: node-a (nodefs.available 15%), node-c (imagefs.available 2Gi, 20.0% of /var/lib/containerd)",
		},
		"the imagefs thresholds apply to a separate runtime filesystem, not the nodefs ones": {
			policy: makePolicy("p").NodePressure(10).InodeMargin(6).Obj(),
			nodes:  []NodeKubelet{node("node-a", th("50%", "50%", "5%", "5%"), fs("/var/lib/containerd", 100*Gi, 1_000_000, v1alpha1.KubeletImagefs))},
		},
		"a filesystem the agent could not place counts as nodefs": {
			policy: makePolicy("p").NodePressure(12).Obj(),
			nodes:  []NodeKubelet{node("node-a", th("15%", "5%", "5%", "5%"), fs("/", 100*Gi, 0, ""))},
			want:   "spec.nodePressure.minAvailablePercent (12%) must be above the kubelet's eviction threshold" + why + "; it is not on 1 of the 1 nodes running selected pods: node-a (nodefs.available 15%)",
		},
		"a quantity threshold small against the filesystem": {
			policy: makePolicy("p").NodePressure(5).Obj(),
			nodes:  []NodeKubelet{node("node-a", th("1Gi", "5%", "15%", "5%"), root)},
		},
		"a quantity threshold exactly at the margin does not hold": {
			policy: makePolicy("p").NodePressure(10).Obj(),
			nodes:  []NodeKubelet{node("node-a", th("10Gi", "5%", "15%", "5%"), root)},
			want:   "spec.nodePressure.minAvailablePercent (10%) must be above the kubelet's eviction threshold" + why + "; it is not on 1 of the 1 nodes running selected pods: node-a (nodefs.available 10Gi, 10.0% of /)",
		},
		"a quantity threshold one byte under the margin holds": {
			policy: makePolicy("p").NodePressure(10).Obj(),
			nodes:  []NodeKubelet{node("node-a", th(fmt.Sprint(10*Gi-1), "5%", "15%", "5%"), root)},
		},
		"a quantity threshold with no filesystem to measure it on is not judged": {
			policy: makePolicy("p").NodePressure(5).Obj(),
			nodes:  []NodeKubelet{node("node-a", th("1Ti", "5%", "15%", "5%"))},
		},
		"a node with no filesystem is judged on its nodefs percentages": {
			policy: makePolicy("p").NodePressure(5).Obj(),
			nodes:  []NodeKubelet{node("node-a", th("7%", "5%", "15%", "5%"))},
			want:   "spec.nodePressure.minAvailablePercent (5%) must be above the kubelet's eviction threshold" + why + "; it is not on 1 of the 1 nodes running selected pods: node-a (nodefs.available 7%)",
		},
		"inode margin against a quantity of inodes": {
			policy: makePolicy("p").NodePressure(20).InodeMargin(10).Obj(),
			nodes:  []NodeKubelet{node("node-a", th("10%", "200k", "15%", "5%"), root)},
			want:   "spec.nodePressure.minInodesFreePercent (10%) must be above the kubelet's eviction threshold" + why + "; it is not on 1 of the 1 nodes running selected pods: node-a (nodefs.inodesFree 200k, 20.0% of /)",
		},
		"no inode signal on a filesystem without a fixed number of inodes": {
			policy: makePolicy("p").NodePressure(20).InodeMargin(2).Obj(),
			nodes:  []NodeKubelet{node("node-a", th("10%", "5%", "15%", "5%"), fs("/", 100*Gi, 0, v1alpha1.KubeletNodefs))},
		},
		"at most five nodes named": {
			policy: makePolicy("p").NodePressure(12).Obj(),
			nodes:  many(7),
			want: "spec.nodePressure.minAvailablePercent (12%) must be above the kubelet's eviction threshold" + why + "; it is not on 7 of the 7 nodes running selected pods: " +
				"node-0 (nodefs.available 15%), node-1 (nodefs.available 15%), node-2 (nodefs.available 15%), node-3 (nodefs.available 15%), node-4 (nodefs.available 15%) and 2 more",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := ""
			if err := ValidateNodePressure(tc.policy, tc.nodes); err != nil {
				got = err.Error()
			}
			if d := diffOf(tc.want, got); d != "" {
				t.Errorf("ValidateNodePressure() mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestPlanNodePressureCarriesTheKubeletThresholds(t *testing.T) {
	nodefs := fsUsage(8*Gi, 500_000)
	imagefs := v1alpha1.FilesystemUsage{Path: "/var/lib/docker", CapacityBytes: 100 * Gi, AvailableBytes: 8 * Gi, KubeletFilesystem: v1alpha1.KubeletImagefs}
	cands := []Candidate{cand("a", 10*Gi, 8*Gi, 15),
		{ContainerID: "d", Filesystem: "/var/lib/docker", Bytes: 10 * Gi, OffloadableBytes: 8 * Gi, MinAvailablePercent: 15}}
	th := KubeletThresholds{
		NodefsAvailable:  EvictionThreshold{Text: "12%", Fraction: 0.12},
		ImagefsAvailable: EvictionThreshold{Text: "2Gi", Quantity: 2 * Gi},
	}
	plan := PlanNodePressure([]v1alpha1.FilesystemUsage{nodefs, imagefs}, cands, th)
	got := map[string]FilesystemThresholds{}
	for _, v := range plan.Victims {
		got[v.ContainerID] = v.Kubelet
	}
	want := map[string]FilesystemThresholds{
		"a": {Signal: "nodefs", Available: th.NodefsAvailable},
		"d": {Signal: "imagefs", Available: th.ImagefsAvailable},
	}
	if d := diffOf(want, got); d != "" {
		t.Errorf("victims' kubelet thresholds mismatch (-want +got):\n%s", d)
	}
	// Whom the plan escalates follows the margins alone.
	none := PlanNodePressure([]v1alpha1.FilesystemUsage{nodefs, imagefs}, cands, KubeletThresholds{})
	strip := func(vs []Victim) []Victim {
		out := slices.Clone(vs)
		for i := range out {
			out[i].Kubelet = FilesystemThresholds{}
		}
		return out
	}
	if d := diffOf(strip(plan.Victims), strip(none.Victims)); d != "" {
		t.Errorf("the kubelet's thresholds changed the plan (-with +without):\n%s", d)
	}
}
