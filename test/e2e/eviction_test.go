package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/test/builders"
)

// TestLayerkeeperActsBeforeTheKubelet runs two identical log-heavy Deployments with a 3Mi
// ephemeral-storage limit, which the kubelet's eviction manager enforces. A control Deployment
// no policy selects is evicted by the kubelet; the protected one, under an Enforce policy whose
// restart threshold (1Mi) sits below the limit, is rolled by layerkeeper first and never
// evicted.
func TestLayerkeeperActsBeforeTheKubelet(t *testing.T) {
	c := requireCluster(t)
	ctx := context.Background()
	cs := clientFor(t, c)
	ns := newNamespace(t, cs, "evict")
	k := installLayerkeeper(t, c)
	policy := builders.MakeLayerPolicy("protect", ns).MatchLabels("protected", "yes").Mode(v1alpha1.ModeEnforce).
		Thresholds("512Ki", "", "1Mi").Remediation(v1alpha1.ActionRolloutRestart, 0, 1).Obj()
	if err := k.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, protected bool) *appsv1.Deployment {
		d := builders.MakeWorkload(name, ns).LogWriter("scheduler", "-rate=131072", "-line-size=256", "-rotate-bytes=65536").
			EphemeralStorageLimit("3Mi").Obj()
		if protected {
			d.Spec.Template.Labels["protected"] = "yes"
		}
		if err := k.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	protected := mk("protected", true)
	control := mk("control", false)
	start := time.Now()

	// The kubelet's eviction leaves an Evicted event on the pod (the pod itself may end
	// Succeeded: the scheduler exits cleanly on SIGTERM).
	evicted := func(app string) []string {
		evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=Evicted"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range evs.Items {
			if ev.InvolvedObject.Kind == "Pod" && strings.HasPrefix(ev.InvolvedObject.Name, app+"-") {
				out = append(out, ev.InvolvedObject.Name+": "+ev.Message)
			}
		}
		return out
	}
	var controlEvictedAfter time.Duration
	waitFor(t, 150*time.Second, "the kubelet evicting the control Deployment's pod", func() error {
		if e := evicted("control"); len(e) > 0 {
			controlEvictedAfter = time.Since(start)
			return nil
		}
		return fmt.Errorf("not yet")
	})
	t.Logf("control: evicted by the kubelet %.0fs after creation", controlEvictedAfter.Seconds())

	// Give the protected workload as long again, then look at what happened to it.
	time.Sleep(controlEvictedAfter / 2)
	d := &appsv1.Deployment{}
	if err := k.Get(ctx, client.ObjectKeyFromObject(protected), d); err != nil {
		t.Fatal(err)
	}
	rolls := d.Annotations[v1alpha1.AnnotationRemediationCount]
	if rolls == "" {
		t.Errorf("layerkeeper never restarted the protected Deployment")
	}
	if e := evicted("protected"); len(e) > 0 {
		t.Errorf("the kubelet evicted protected pods: %v", e)
	}
	t.Logf("protected: rolled by layerkeeper (remediation count annotation %s; the zero cooldown forgives each), no eviction in %.0fs; control: evicted", rolls, time.Since(start).Seconds())
	t.Logf("control Deployment %s was left to the kubelet", control.Name)
}
