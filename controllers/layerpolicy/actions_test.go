package layerpolicy

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

func TestLastActionsAndBucketProblem(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	off := func(name string, created, finished time.Duration, phase v1alpha1.OffloadPhase, reason string) v1alpha1.LayerOffload {
		lo := v1alpha1.LayerOffload{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-created))},
			Spec:   v1alpha1.LayerOffloadSpec{PodName: "web-1", ContainerName: "app", Reason: v1alpha1.OffloadReasonThreshold},
			Status: v1alpha1.LayerOffloadStatus{Phase: phase, Attempts: 1}}
		if finished > 0 {
			at := metav1.NewTime(now.Add(-finished))
			lo.Status.CompletionTime = &at
		}
		if reason != "" {
			lo.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionFailed, Status: metav1.ConditionTrue, Reason: reason, Message: "bucket \"x\" does not exist"}}
		}
		return lo
	}
	failedOld := off("a", 3*time.Hour, 3*time.Hour, v1alpha1.OffloadFailed, v1alpha1.ReasonBucketUnreachable)
	okNew := off("b", time.Hour, time.Hour, v1alpha1.OffloadSucceeded, "")
	failedNew := off("c", 10*time.Minute, 5*time.Minute, v1alpha1.OffloadFailed, v1alpha1.ReasonBucketUnreachable)
	gone := off("d", 2*time.Minute, time.Minute, v1alpha1.OffloadFailed, v1alpha1.ReasonContainerGone)

	if p := BucketProblem([]v1alpha1.LayerOffload{failedOld, okNew}); p != nil {
		t.Errorf("a later success clears the problem, got %+v", p)
	}
	if p := BucketProblem([]v1alpha1.LayerOffload{failedOld, okNew, failedNew}); p == nil || p.Reason != v1alpha1.ReasonBucketUnreachable {
		t.Errorf("newest failed on the bucket: got %+v", p)
	}
	if p := BucketProblem([]v1alpha1.LayerOffload{failedNew, gone}); p != nil {
		t.Errorf("a container gone is not a bucket problem: got %+v", p)
	}

	acts := LastActions([]v1alpha1.LayerOffload{failedOld, okNew}, []Remediated{{Target: "Deployment/web", Action: v1alpha1.ActionRolloutRestart,
		Time: now.Add(-30 * time.Minute), Count: "1"}})
	if len(acts) != 3 || acts[0].Kind != v1alpha1.ActionKindRolloutRestart || acts[1].Target != "Pod/web-1" || acts[2].Time.Time != now.Add(-3*time.Hour) {
		t.Errorf("LastActions = %+v", acts)
	}
	var many []v1alpha1.LayerOffload
	for range 15 {
		many = append(many, okNew)
	}
	if n := len(LastActions(many, nil)); n != MaxLastActions {
		t.Errorf("%d actions, want %d", n, MaxLastActions)
	}
}
