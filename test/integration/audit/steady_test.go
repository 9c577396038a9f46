package audit

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/test/builders"
)

// TestSteadyStateMakesNoWrites: once the controllers have converged, new scans with the same
// figures make no write to pods, workloads or policies (resourceVersions stay put).
func TestSteadyStateMakesNoWrites(t *testing.T) {
	c := requireAPI(t)
	ctx := context.Background()
	// make bench runs this at scale: LAYERKEEPER_STEADY_NODES=200 LAYERKEEPER_STEADY_PODS_PER_NODE=10.
	nodes, deploymentsPerNode := envInt("LAYERKEEPER_STEADY_NODES", 10), envInt("LAYERKEEPER_STEADY_PODS_PER_NODE", 5)
	start := time.Now()
	nsCounter++
	ns := fmt.Sprintf("steady-%d", nsCounter)
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, c.Create(ctx, builders.MakeLayerPolicy("all", ns).Thresholds("1Gi", "4Gi", "").Obj()))

	reports := map[string]*builders.ReportWrapper{}
	for n := 0; n < nodes; n++ {
		node := fmt.Sprintf("steady-node-%d", n)
		reports[node] = builders.MakeReport(node, fakeClock.Now(), 100*Gi, 60*Gi)
		for d := 0; d < deploymentsPerNode; d++ {
			name := fmt.Sprintf("app-%d-%d", n, d)
			dep := builders.Deployment(name, ns, map[string]string{"app": name}, "main")
			must(t, c.Create(ctx, dep))
			rs := builders.ReplicaSetFor(dep, "abc")
			must(t, c.Create(ctx, rs))
			pod := builders.PodFor(rs, "ReplicaSet", name+"-abc-0", node, rs.Spec.Template)
			must(t, c.Create(ctx, pod))
			// Every other pod is over warn, so both kinds of steady state are covered.
			size := 100 * Mi
			if d%2 == 0 {
				size = 2 * Gi
			}
			reports[node].Container(pod, "main", size, "/var/log/app")
		}
	}
	for _, r := range reports {
		writeReport(t, c, r.Obj())
	}
	total := nodes * deploymentsPerNode
	t.Logf("created %d Deployments, ReplicaSets and pods on %d nodes in %s", nodes*deploymentsPerNode, nodes, time.Since(start).Round(time.Second))
	eventuallyWithin(t, time.Duration(30+nodes*deploymentsPerNode/20)*time.Second, "every Deployment has its condition", func() (bool, string) {
		var list appsv1.DeploymentList
		must(t, c.List(ctx, &list, client.InNamespace(ns)))
		n := 0
		for _, d := range list.Items {
			for _, cond := range d.Status.Conditions {
				if cond.Type == v1alpha1.ConditionWritableLayerWithinLimits && cond.Status != corev1.ConditionUnknown {
					n++
				}
			}
		}
		return n == total, fmt.Sprintf("%d of %d", n, total)
	})
	time.Sleep(3 * time.Second) // let the last reconciles settle before taking the snapshot

	before := versions(t, c, ns)
	window := time.Now()
	for round := 0; round < 3; round++ {
		fakeClock.Step(30 * time.Second)
		for node, r := range reports {
			st := r.Obj().Status
			now := metav1.NewTime(fakeClock.Now())
			st.ScanTime = &now
			writeReport(t, c, &v1alpha1.NodeLayerReport{ObjectMeta: metav1.ObjectMeta{Name: node}, Status: st})
		}
		time.Sleep(2 * time.Second)
	}
	after := versions(t, c, ns)
	writes := 0
	for k, v := range after {
		if before[k] != v {
			writes++
			t.Errorf("%s was written in steady state (resourceVersion %s -> %s)", k, before[k], v)
		}
	}
	t.Logf("steady state: %d pods on %d nodes, %d objects watched, %d writes over 3 rescans of every node in %s (%.1f writes/minute)",
		nodes*deploymentsPerNode, nodes, len(after), writes, time.Since(window).Round(time.Second), float64(writes)/time.Since(window).Minutes())
}

func versions(t *testing.T, c client.Client, ns string) map[string]string {
	out := map[string]string{}
	var pods corev1.PodList
	must(t, c.List(ctx(), &pods, client.InNamespace(ns)))
	for _, p := range pods.Items {
		out["pod/"+p.Name] = p.ResourceVersion
	}
	var deps appsv1.DeploymentList
	must(t, c.List(ctx(), &deps, client.InNamespace(ns)))
	for _, d := range deps.Items {
		out["deployment/"+d.Name] = d.ResourceVersion
	}
	var pols v1alpha1.LayerPolicyList
	must(t, c.List(ctx(), &pols, client.InNamespace(ns)))
	for _, p := range pols.Items {
		out["layerpolicy/"+p.Name] = p.ResourceVersion
	}
	return out
}

func ctx() context.Context { return context.Background() }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
