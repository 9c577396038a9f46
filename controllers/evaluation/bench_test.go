package evaluation

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// cluster is a simulated cluster for BenchmarkEvaluateCluster: reports as the agents write
// them, pod labels as the informer cache holds them, and policies.
type cluster struct {
	reports   []*v1alpha1.NodeLayerReport
	podLabels map[string]labels.Set // by pod UID
	policies  []*v1alpha1.LayerPolicy
}

const (
	benchNodes         = 5000
	benchPodsPerNode   = 10
	benchContainers    = 3 // per pod: 30 per report, 150,000 in all
	benchNamespaces    = 100
	benchPoliciesPerNS = 5 // 500 policies
	benchApps          = 10
)

// newCluster builds the simulated cluster deterministically. In each namespace, policies 0-3
// select two apps each (app in (app-2k, app-2k+1)) and policy 4 selects team=data, which apps
// 6-9 carry: every pod is selected by one policy, and the pods of apps 6 and 7 by two.
func newCluster() *cluster {
	rng := rand.New(rand.NewPCG(1, 2))
	c := &cluster{podLabels: make(map[string]labels.Set, benchNodes*benchPodsPerNode)}
	for ns := range benchNamespaces {
		namespace := fmt.Sprintf("team-%03d", ns)
		for k := range benchPoliciesPerNS {
			w := makePolicy(fmt.Sprintf("policy-%d", k))
			w.Namespace = namespace
			if k < 4 {
				w.Spec.Selector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: "app", Operator: metav1.LabelSelectorOpIn,
					Values: []string{fmt.Sprintf("app-%d", 2*k), fmt.Sprintf("app-%d", 2*k+1)},
				}}}
			} else {
				w.Spec.Selector = metav1.LabelSelector{MatchLabels: map[string]string{"team": "data"}}
			}
			w.Warn(fmt.Sprintf("%dGi", 2+k)).Offload(fmt.Sprintf("%dGi", 4+k)).Restart(fmt.Sprintf("%dGi", 6+k))
			if k%2 == 0 {
				w.Enforce().ShipTo("/var/log/app", "/tmp").NodePressure(15)
			}
			if k == 1 {
				w.LeadTime(30*time.Minute).Containers("main", "worker")
			}
			c.policies = append(c.policies, w.Obj())
		}
	}
	scan := metav1.NewTime(t0)
	for n := range benchNodes {
		r := &v1alpha1.NodeLayerReport{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%04d", n)}}
		avail := int64(20+rng.IntN(80)) * Gi
		if n%10 == 0 {
			avail = int64(5+rng.IntN(20)) * Gi // a tenth of the nodes under pressure
		}
		r.Status = v1alpha1.NodeLayerReportStatus{
			ScanTime: &scan,
			Filesystems: []v1alpha1.FilesystemUsage{{Path: testFS, CapacityBytes: 200 * Gi, AvailableBytes: avail,
				Inodes: 13_000_000, InodesFree: 10_000_000}},
		}
		for p := range benchPodsPerNode {
			app := rng.IntN(benchApps)
			ns := fmt.Sprintf("team-%03d", rng.IntN(benchNamespaces))
			pod := fmt.Sprintf("app-%d-%04d-%d", app, n, p)
			uid := fmt.Sprintf("uid-%04d-%d", n, p)
			set := labels.Set{"app": fmt.Sprintf("app-%d", app), "pod-template-hash": "7d9f8c"}
			if app >= 6 {
				set["team"] = "data"
			}
			c.podLabels[uid] = set
			for i, name := range [benchContainers]string{"main", "worker", "sidecar"} {
				bytes := rng.Int64N(8 * Gi)
				r.Status.Containers = append(r.Status.Containers, v1alpha1.ContainerLayer{
					Runtime: v1alpha1.RuntimeContainerd, ContainerID: fmt.Sprintf("%s-%d", uid, i), State: v1alpha1.ContainerRunning,
					Namespace: ns, Pod: pod, PodUID: uid, Container: name,
					UpperDir: fmt.Sprintf("%s/snapshots/%d/fs", testFS, n*100+p*3+i),
					Bytes:    bytes, Inodes: rng.Int64N(200_000), GrowthBytesPerMinute: rng.Int64N(60*Mi) - 10*Mi,
					HotPaths: []v1alpha1.HotPathUsage{
						{Path: "/var/log/app", Bytes: bytes / 2, Files: 300},
						{Path: "/var/log/app/" + t0.Format("2006-01-02"), Bytes: bytes / 3, Files: 100},
						{Path: "/tmp", Bytes: bytes / 8, Files: 20},
					},
				})
			}
		}
		r.Status.ContainerCount = int32(len(r.Status.Containers))
		c.reports = append(c.reports, r)
	}
	return c
}

// evaluateCluster is one full controller pass: compile every policy's selector, then per node
// group the report by pod, select each pod's policies by label, plan node pressure and
// evaluate every pod. It returns the number of pods per state.
func evaluateCluster(c *cluster, now time.Time) map[v1alpha1.LayerState]int {
	type compiled struct {
		policy   *v1alpha1.LayerPolicy
		selector labels.Selector
	}
	byNS := make(map[string][]compiled, benchNamespaces)
	for _, p := range c.policies {
		s, err := metav1.LabelSelectorAsSelector(&p.Spec.Selector)
		if err != nil {
			panic(err)
		}
		byNS[p.Namespace] = append(byNS[p.Namespace], compiled{p, s})
	}
	counts := map[v1alpha1.LayerState]int{}
	selected := make([][]*v1alpha1.LayerPolicy, 0, benchPodsPerNode)
	var cands []Candidate
	for _, r := range c.reports {
		pods := PodsFromReport(r)
		selected, cands = selected[:0], cands[:0]
		for i := range pods {
			set := c.podLabels[pods[i].PodUID]
			var ps []*v1alpha1.LayerPolicy
			for _, cp := range byNS[pods[i].Namespace] {
				if cp.selector.Matches(set) {
					ps = append(ps, cp.policy)
				}
			}
			selected = append(selected, ps)
			cands = append(cands, NodeCandidates(pods[i], ps)...)
		}
		plan := PlanNodePressure(r.Status.Filesystems, cands, DefaultKubeletThresholds())
		for i := range pods {
			d := Evaluate(Input{Policies: selected[i], Pod: pods[i], Now: now, NodePressure: plan})
			counts[d.State]++
		}
	}
	return counts
}

// BenchmarkEvaluateCluster measures one full evaluation pass over 5,000 node reports of 30
// containers each (150,000 containers, 50,000 pods) under 500 policies, each pod selected by
// one or two of them. Building the simulated cluster is outside the timed part; selecting
// policies by label (with selectors compiled once per pass), grouping reports by pod,
// planning node pressure and evaluating are inside it.
func BenchmarkEvaluateCluster(b *testing.B) {
	c := newCluster()
	b.ReportAllocs()
	var counts map[v1alpha1.LayerState]int
	for b.Loop() {
		counts = evaluateCluster(c, now)
	}
	b.ReportMetric(float64(counts[v1alpha1.StateWarn]+counts[v1alpha1.StateOffload]+counts[v1alpha1.StateRestart]), "over-pods")
}

// TestEvaluateClusterSimulation runs the benchmark's pass once on a small slice of the
// simulated cluster, so the benchmark code stays correct under plain `go test`.
func TestEvaluateClusterSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a simulated cluster")
	}
	c := newCluster()
	c.reports = c.reports[:200]
	counts := evaluateCluster(c, now)
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != 200*benchPodsPerNode {
		t.Errorf("evaluated %d pods, want %d (counts %v)", total, 200*benchPodsPerNode, counts)
	}
	for _, s := range []v1alpha1.LayerState{v1alpha1.StateOK, v1alpha1.StateWarn, v1alpha1.StateOffload, v1alpha1.StateRestart} {
		if counts[s] == 0 {
			t.Errorf("no pod in state %s; the simulation should exercise every state (counts %v)", s, counts)
		}
	}
}
