package layerpolicy

import (
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// MaxLastActions bounds status.lastActions.
const MaxLastActions = 10

// Remediated is a workload's last remediation under the policy, read from its annotations.
type Remediated struct {
	// Target is kind/name.
	Target string
	Action v1alpha1.RemediationAction
	Time   time.Time
	Count  string
}

// LastActions lists the policy's newest offloads and remediations, newest first.
func LastActions(offloads []v1alpha1.LayerOffload, remediated []Remediated) []v1alpha1.ActionRecord {
	var out []v1alpha1.ActionRecord
	for i := range offloads {
		lo := &offloads[i]
		msg := fmt.Sprintf("container %q (%s): %s", lo.Spec.ContainerName, lo.Spec.Reason, phaseOf(lo))
		switch lo.Status.Phase {
		case v1alpha1.OffloadSucceeded:
			msg += fmt.Sprintf(", %d object(s), %d bytes; %d file(s) deleted", lo.Status.UploadedObjects, lo.Status.UploadedBytes, lo.Status.DeletedFiles)
		case v1alpha1.OffloadFailed:
			if len(lo.Status.Errors) > 0 {
				msg += ": " + lo.Status.Errors[0]
			}
		}
		out = append(out, v1alpha1.ActionRecord{Kind: v1alpha1.ActionKindOffload, Target: "Pod/" + lo.Spec.PodName,
			Time: lo.CreationTimestamp, Message: cut(msg, 1024)})
	}
	for _, r := range remediated {
		kind := v1alpha1.ActionKindRolloutRestart
		if r.Action == v1alpha1.ActionEvictPod {
			kind = v1alpha1.ActionKindEvictPod
		}
		out = append(out, v1alpha1.ActionRecord{Kind: kind, Target: r.Target, Time: metav1.NewTime(r.Time),
			Message: fmt.Sprintf("remediation %s in a row", r.Count)})
	}
	slices.SortStableFunc(out, func(a, b v1alpha1.ActionRecord) int { return b.Time.Compare(a.Time.Time) })
	if len(out) > MaxLastActions {
		out = out[:MaxLastActions]
	}
	return out
}

func phaseOf(lo *v1alpha1.LayerOffload) string {
	if lo.Status.Phase == "" {
		return string(v1alpha1.OffloadPending)
	}
	return string(lo.Status.Phase)
}

// BucketProblem is the policy's Ready problem when its newest finished offload failed on the
// bucket itself (missing, refused credentials, unreachable); nil otherwise.
func BucketProblem(offloads []v1alpha1.LayerOffload) *Problem {
	var newest *v1alpha1.LayerOffload
	for i := range offloads {
		lo := &offloads[i]
		if lo.Status.CompletionTime == nil || (lo.Status.Phase != v1alpha1.OffloadSucceeded && lo.Status.Phase != v1alpha1.OffloadFailed) {
			continue
		}
		if newest == nil || lo.Status.CompletionTime.After(newest.Status.CompletionTime.Time) {
			newest = lo
		}
	}
	if newest == nil || newest.Status.Phase != v1alpha1.OffloadFailed {
		return nil
	}
	c := meta.FindStatusCondition(newest.Status.Conditions, v1alpha1.ConditionFailed)
	if c == nil || c.Reason != v1alpha1.ReasonBucketUnreachable {
		return nil
	}
	return &Problem{Reason: v1alpha1.ReasonBucketUnreachable,
		Message: cut(fmt.Sprintf("LayerOffload %s failed (attempt %d; files kept, retried with backoff): %s", newest.Name, newest.Status.Attempts, c.Message), 1024)}
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
