package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/layerkeeper/layerkeeper/test/builders"
)

// TestRolloutRestartRollsPods patches the pod template's restartedAt annotation, as
// `kubectl rollout restart` does, and checks that the cluster's real Deployment controller
// rolls the workload: a new ReplicaSet, new pods with new container IDs and fresh writable
// layers, the old pods gone.
func TestRolloutRestartRollsPods(t *testing.T) {
	c := requireCluster(t)
	cs := clientFor(t, c)
	ns := newNamespace(t, cs, "rollout")
	ctx := context.Background()

	d := builders.MakeWorkload("airflow-scheduler", ns).Replicas(2).
		LogWriter("scheduler", "-rate=16384", "-rotate-bytes=65536").Obj()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := waitRolledOut(t, cs, d, 120*time.Second)
	layersBefore := measureNode(t, c)
	var oldIDs, oldUppers, oldNames []string
	for _, p := range before {
		id := containerID(t, p, "scheduler")
		oldIDs, oldNames = append(oldIDs, id), append(oldNames, p.Name)
		if mc, ok := layersBefore[id]; ok {
			oldUppers = append(oldUppers, mc.UpperDir)
		} else {
			t.Errorf("the scanner did not find %s of pod %s", id, p.Name)
		}
	}

	restartedAt := time.Now()
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{builders.RestartedAtAnnotation: restartedAt.Format(time.RFC3339)}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, d.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	after := waitRolledOut(t, cs, d, 120*time.Second)
	t.Logf("rolled %d pods in %v", len(after), time.Since(restartedAt).Round(100*time.Millisecond))

	layersAfter := measureNode(t, c)
	for _, p := range after {
		id := containerID(t, p, "scheduler")
		if slices.Contains(oldNames, p.Name) || slices.Contains(oldIDs, id) {
			t.Errorf("pod %s (container %s) survived the roll; old pods %v, containers %v", p.Name, id, oldNames, oldIDs)
		}
		if p.Annotations[builders.RestartedAtAnnotation] == "" {
			t.Errorf("pod %s lacks the %s annotation of the new template", p.Name, builders.RestartedAtAnnotation)
		}
		mc, ok := layersAfter[id]
		if !ok {
			t.Errorf("the scanner did not find %s of pod %s", id, p.Name)
			continue
		}
		if slices.Contains(oldUppers, mc.UpperDir) {
			t.Errorf("pod %s reuses an old writable layer %s", p.Name, mc.UpperDir)
		}
	}

	// The Deployment controller did it: a second ReplicaSet, the first scaled to zero.
	rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + d.Name})
	if err != nil {
		t.Fatal(err)
	}
	var replicas []int32
	for _, rs := range rss.Items {
		replicas = append(replicas, *rs.Spec.Replicas)
	}
	slices.Sort(replicas)
	if !slices.Equal(replicas, []int32{0, 2}) {
		t.Errorf("ReplicaSets' replicas = %v, want the old one at 0 and the new one at 2", replicas)
	}
	cur, err := cs.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range cur.Status.Conditions {
		if cond.Type == appsv1.DeploymentProgressing && cond.Reason != "NewReplicaSetAvailable" {
			t.Errorf("Progressing reason %s (%s), want NewReplicaSetAvailable", cond.Reason, cond.Message)
		}
	}
}
