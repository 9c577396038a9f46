package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/test/builders"
	"github.com/layerkeeper/layerkeeper/test/cluster"
)

// TestKubeletThresholdsReadFromTheNode: the cluster's kubelet gets its hard eviction
// thresholds from a drop-in of its --config-dir (nodefs.available 9%, not the default 10%).
// The agent, a DaemonSet pod, reads them from the kubelet's process and reports them; the
// controller then judges a policy's nodePressure margin against them: 10% is valid on this
// node (it would not be against the default 10%), 9% is not, and the Ready condition names
// the node and its threshold.
func TestKubeletThresholdsReadFromTheNode(t *testing.T) {
	c := requireCluster(t)
	ctx := context.Background()
	cs := clientFor(t, c)
	ns := newNamespace(t, cs, "kubelet")
	k := installLayerkeeper(t, c)

	var ke *v1alpha1.KubeletEviction
	waitFor(t, 60*time.Second, "the kubelet's thresholds in the NodeLayerReport", func() error {
		rep := &v1alpha1.NodeLayerReport{}
		if err := k.Get(ctx, client.ObjectKey{Name: c.NodeName}, rep); err != nil {
			return err
		}
		if ke = rep.Status.KubeletEviction; ke == nil {
			return fmt.Errorf("no kubeletEviction yet")
		}
		return nil
	})
	t.Logf("kubeletEviction: %+v", *ke)
	want := cluster.KubeletEvictionHard
	if ke.Source != v1alpha1.KubeletEvictionConfigFile || ke.NodefsAvailable != want["nodefs.available"] || ke.NodefsInodesFree != want["nodefs.inodesFree"] ||
		ke.ImagefsAvailable != want["imagefs.available"] || ke.ImagefsInodesFree != want["imagefs.inodesFree"] {
		t.Errorf("kubeletEviction %+v, want source ConfigFile and the drop-in's %v", *ke, want)
	}

	quiet := builders.MakeWorkload("quiet", ns).Quiet("quiet").Obj()
	if err := k.Create(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, cs, quiet, 120*time.Second)
	policy := builders.MakeLayerPolicy("pressure", ns).MatchLabels("app", "quiet").Mode(v1alpha1.ModeAudit).
		Thresholds("1Gi", "", "").NodePressure(10).Obj()
	if err := k.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	ready := func(status metav1.ConditionStatus, reason string) func() error {
		return func() error {
			p := &v1alpha1.LayerPolicy{}
			if err := k.Get(ctx, client.ObjectKeyFromObject(policy), p); err != nil {
				return err
			}
			r := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
			if r == nil || r.Status != status || r.Reason != reason || r.ObservedGeneration != p.Generation {
				return fmt.Errorf("Ready %+v", r)
			}
			t.Logf("Ready %s %s: %s", r.Status, r.Reason, r.Message)
			if reason == v1alpha1.ReasonInvalidNodePressure && (!strings.Contains(r.Message, c.NodeName) || !strings.Contains(r.Message, "9%")) {
				t.Errorf("the message does not name the node %s and its 9%% threshold: %s", c.NodeName, r.Message)
			}
			return nil
		}
	}
	waitFor(t, 60*time.Second, "a 10% margin Ready above the node's 9%", ready(metav1.ConditionTrue, v1alpha1.ReasonPolicyReady))

	p := &v1alpha1.LayerPolicy{}
	if err := k.Get(ctx, client.ObjectKeyFromObject(policy), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.NodePressure.MinAvailablePercent = 9
	if err := k.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "a 9% margin InvalidNodePressure at the node's 9%", ready(metav1.ConditionFalse, v1alpha1.ReasonInvalidNodePressure))
}
