package workloadstatus

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
	"github.com/layerkeeper/layerkeeper/controllers/podstate"
)

// Summary is a workload's verdict over its covered pods.
type Summary struct {
	// Covered is false when no policy covers any pod of the workload: ours must go.
	Covered bool
	// Condition is the WritableLayerWithinLimits condition to set (without times).
	Condition Condition
	// Worst is the deciding pod's decision.
	Worst evaluation.Decision
}

// Summarize folds the decisions on a workload's covered pods into one condition: False with
// the worst offender (highest state, then largest) when any pod is over a threshold; else
// Unknown when any pod's figures are missing or stale; else True.
func Summarize(kind, name string, decisions []evaluation.Decision) Summary {
	if len(decisions) == 0 {
		return Summary{}
	}
	var worst, unknown *evaluation.Decision
	var largest *evaluation.Decision
	for i := range decisions {
		d := &decisions[i]
		switch d.Status {
		case metav1.ConditionFalse:
			if worst == nil || podstate.Rank(d.State) > podstate.Rank(worst.State) ||
				(d.State == worst.State && d.Bytes > worst.Bytes) {
				worst = d
			}
		case metav1.ConditionUnknown:
			if unknown == nil {
				unknown = d
			}
		default:
			if largest == nil || d.Bytes > largest.Bytes {
				largest = d
			}
		}
	}
	switch {
	case worst != nil:
		return Summary{Covered: true, Worst: *worst, Condition: Condition{
			Status: corev1.ConditionFalse, Reason: worst.Reason, Message: worst.Message}}
	case unknown != nil:
		return Summary{Covered: true, Worst: *unknown, Condition: Condition{
			Status: corev1.ConditionUnknown, Reason: unknown.Reason, Message: unknown.Message}}
	}
	msg := fmt.Sprintf("all %d covered pods of %s %s are within their writable-layer limits", len(decisions), kind, name)
	if largest != nil && largest.Bytes > 0 {
		msg += fmt.Sprintf("; largest: container %q of pod %q at %s", largest.Container, largest.Pod, evaluation.HumanBytes(largest.Bytes))
	}
	return Summary{Covered: true, Worst: *largest, Condition: Condition{
		Status: corev1.ConditionTrue, Reason: v1alpha1.ReasonWithinLimits, Message: msg}}
}

// DesiredAnnotations returns the workload's annotations for a summary, in the same shape as a
// pod's (see podstate.Desired).
func DesiredAnnotations(s Summary) (want map[string]string, keep bool) {
	if !s.Covered {
		return nil, false
	}
	switch s.Condition.Status {
	case corev1.ConditionUnknown:
		return nil, true
	case corev1.ConditionTrue:
		return nil, false
	}
	want = map[string]string{
		v1alpha1.AnnotationWritableLayerBytes: strconv.FormatInt(s.Worst.Bytes, 10),
		v1alpha1.AnnotationState:              string(s.Worst.State),
		v1alpha1.AnnotationPolicy:             s.Worst.Policy,
	}
	if s.Worst.HotPath != "" {
		want[v1alpha1.AnnotationHotPath] = s.Worst.HotPath
	}
	return want, false
}

// NextCondition returns the condition to write given the current one, and whether it differs:
// the transition time moves only when the status changes.
func NextCondition(cur Condition, had bool, want Condition, now metav1.Time) (Condition, bool) {
	if had && cur.Status == want.Status && cur.Reason == want.Reason && cur.Message == want.Message {
		return cur, false
	}
	want.LastUpdateTime = now
	want.LastTransitionTime = now
	if had && cur.Status == want.Status {
		want.LastTransitionTime = cur.LastTransitionTime
	}
	return want, true
}
