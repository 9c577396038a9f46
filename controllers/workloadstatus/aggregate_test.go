package workloadstatus

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
)

const gi = int64(1) << 30

// decision builds a pod's decision; the status follows the state (ok: True, else False).
func decision(pod string, state v1alpha1.LayerState, bytes int64) evaluation.Decision {
	d := evaluation.Decision{Pod: pod, State: state, Status: metav1.ConditionFalse, Container: "app", Bytes: bytes,
		HotPath: "/var/log", Policy: "p", Reason: "Over-" + string(state), Message: pod + " is " + string(state)}
	if state == v1alpha1.StateOK {
		d.Status, d.Reason, d.Message = metav1.ConditionTrue, v1alpha1.ReasonWithinLimits, pod+" is fine"
	}
	return d
}

func unknownDecision(pod, reason string) evaluation.Decision {
	return evaluation.Decision{Pod: pod, Status: metav1.ConditionUnknown, Reason: reason, Message: pod + " has no figures"}
}

func TestSummarize(t *testing.T) {
	ok, warn, offload, restart := v1alpha1.StateOK, v1alpha1.StateWarn, v1alpha1.StateOffload, v1alpha1.StateRestart
	falseOf := func(d evaluation.Decision) Summary {
		return Summary{Covered: true, Worst: d, Condition: Condition{Status: corev1.ConditionFalse, Reason: d.Reason, Message: d.Message}}
	}
	unknownOf := func(d evaluation.Decision) Summary {
		return Summary{Covered: true, Worst: d, Condition: Condition{Status: corev1.ConditionUnknown, Reason: d.Reason, Message: d.Message}}
	}
	trueOf := func(d evaluation.Decision, msg string) Summary {
		return Summary{Covered: true, Worst: d, Condition: Condition{Status: corev1.ConditionTrue, Reason: v1alpha1.ReasonWithinLimits, Message: msg}}
	}
	cases := map[string]struct {
		decisions []evaluation.Decision
		want      Summary
	}{
		"nil decisions: not covered":   {},
		"empty decisions: not covered": {decisions: []evaluation.Decision{}},
		"one pod within limits: message names it": {
			decisions: []evaluation.Decision{decision("web-a", ok, 3*gi/2)},
			want: trueOf(decision("web-a", ok, 3*gi/2),
				`all 1 covered pods of Deployment web are within their writable-layer limits; largest: container "app" of pod "web-a" at 1.5Gi`),
		},
		"all within limits: largest pod": {
			decisions: []evaluation.Decision{decision("web-a", ok, gi), decision("web-b", ok, 2*gi), decision("web-c", ok, 512<<20)},
			want: trueOf(decision("web-b", ok, 2*gi),
				`all 3 covered pods of Deployment web are within their writable-layer limits; largest: container "app" of pod "web-b" at 2Gi`),
		},
		"all within limits, equal sizes: the first": {
			decisions: []evaluation.Decision{decision("web-a", ok, gi), decision("web-b", ok, gi)},
			want: trueOf(decision("web-a", ok, gi),
				`all 2 covered pods of Deployment web are within their writable-layer limits; largest: container "app" of pod "web-a" at 1Gi`),
		},
		"all within limits, nothing written: no largest": {
			decisions: []evaluation.Decision{decision("web-a", ok, 0), decision("web-b", ok, 0)},
			want:      trueOf(decision("web-a", ok, 0), "all 2 covered pods of Deployment web are within their writable-layer limits"),
		},
		"one over among ok pods: False with it": {
			decisions: []evaluation.Decision{decision("web-a", ok, 5*gi), decision("web-b", warn, 2*gi), decision("web-c", ok, gi)},
			want:      falseOf(decision("web-b", warn, 2*gi)),
		},
		"higher state beats larger size": {
			decisions: []evaluation.Decision{decision("web-a", warn, 9*gi), decision("web-b", restart, 3*gi), decision("web-c", offload, 8*gi)},
			want:      falseOf(decision("web-b", restart, 3*gi)),
		},
		"offload beats warn": {
			decisions: []evaluation.Decision{decision("web-a", warn, 9*gi), decision("web-b", offload, 3*gi)},
			want:      falseOf(decision("web-b", offload, 3*gi)),
		},
		"same state: larger size": {
			decisions: []evaluation.Decision{decision("web-a", warn, 2*gi), decision("web-b", warn, 4*gi), decision("web-c", warn, 3*gi)},
			want:      falseOf(decision("web-b", warn, 4*gi)),
		},
		"same state and size: the first": {
			decisions: []evaluation.Decision{decision("web-a", offload, 4*gi), decision("web-b", offload, 4*gi)},
			want:      falseOf(decision("web-a", offload, 4*gi)),
		},
		"False wins over Unknown": {
			decisions: []evaluation.Decision{unknownDecision("web-a", v1alpha1.ReasonNoFigures), decision("web-b", warn, gi),
				unknownDecision("web-c", v1alpha1.ReasonStaleFigures)},
			want: falseOf(decision("web-b", warn, gi)),
		},
		"Unknown when no pod is over, even with larger ok pods": {
			decisions: []evaluation.Decision{decision("web-a", ok, 5*gi), unknownDecision("web-b", v1alpha1.ReasonStaleFigures)},
			want:      unknownOf(unknownDecision("web-b", v1alpha1.ReasonStaleFigures)),
		},
		"several Unknown: the first": {
			decisions: []evaluation.Decision{unknownDecision("web-a", v1alpha1.ReasonNoFigures), unknownDecision("web-b", v1alpha1.ReasonStaleFigures)},
			want:      unknownOf(unknownDecision("web-a", v1alpha1.ReasonNoFigures)),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Summarize("Deployment", "web", tc.decisions)); diff != "" {
				t.Errorf("Summarize (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSummarizeNamesKind(t *testing.T) {
	s := Summarize("StatefulSet", "db", []evaluation.Decision{decision("db-0", v1alpha1.StateOK, 0)})
	want := "all 1 covered pods of StatefulSet db are within their writable-layer limits"
	if diff := cmp.Diff(want, s.Condition.Message); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
}

func TestDesiredAnnotations(t *testing.T) {
	over := decision("web-b", v1alpha1.StateOffload, 3*gi)
	noHotPath := over
	noHotPath.HotPath = ""
	summary := func(status corev1.ConditionStatus, d evaluation.Decision) Summary {
		return Summary{Covered: true, Worst: d, Condition: Condition{Status: status}}
	}
	cases := map[string]struct {
		summary  Summary
		want     map[string]string
		wantKeep bool
	}{
		"not covered: remove ours":     {summary: Summary{}},
		"not covered, stale worst too": {summary: Summary{Worst: over}},
		"Unknown: keep what is there":  {summary: summary(corev1.ConditionUnknown, unknownDecision("web-a", v1alpha1.ReasonNoFigures)), wantKeep: true},
		"True: remove ours":            {summary: summary(corev1.ConditionTrue, decision("web-a", v1alpha1.StateOK, gi))},
		"False: the worst pod's figures": {summary: summary(corev1.ConditionFalse, over),
			want: map[string]string{
				v1alpha1.AnnotationWritableLayerBytes: "3221225472",
				v1alpha1.AnnotationState:              "offload",
				v1alpha1.AnnotationHotPath:            "/var/log",
				v1alpha1.AnnotationPolicy:             "p",
			}},
		"False without hot path: no hot-path key": {summary: summary(corev1.ConditionFalse, noHotPath),
			want: map[string]string{
				v1alpha1.AnnotationWritableLayerBytes: "3221225472",
				v1alpha1.AnnotationState:              "offload",
				v1alpha1.AnnotationPolicy:             "p",
			}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, keep := DesiredAnnotations(tc.summary)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DesiredAnnotations (-want +got):\n%s", diff)
			}
			if keep != tc.wantKeep {
				t.Errorf("DesiredAnnotations keep = %t, want %t", keep, tc.wantKeep)
			}
		})
	}
}

func TestNextCondition(t *testing.T) {
	then := metav1.NewTime(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	earlier := metav1.NewTime(then.Add(-2 * time.Hour))
	now := metav1.NewTime(then.Add(time.Hour))
	cur := Condition{Status: corev1.ConditionFalse, Reason: v1alpha1.ReasonOverWarn, Message: "web-0 at 2Gi",
		LastTransitionTime: earlier, LastUpdateTime: then}
	cases := map[string]struct {
		cur         Condition
		had         bool
		want        Condition
		wantNext    Condition
		wantChanged bool
	}{
		"new condition: both times now": {
			want:        Condition{Status: corev1.ConditionTrue, Reason: v1alpha1.ReasonWithinLimits, Message: "all fine"},
			wantNext:    Condition{Status: corev1.ConditionTrue, Reason: v1alpha1.ReasonWithinLimits, Message: "all fine", LastTransitionTime: now, LastUpdateTime: now},
			wantChanged: true,
		},
		"not had, even if cur matches: written": {
			cur:         Condition{Status: corev1.ConditionFalse, Reason: v1alpha1.ReasonOverWarn, Message: "web-0 at 2Gi"},
			want:        Condition{Status: corev1.ConditionFalse, Reason: v1alpha1.ReasonOverWarn, Message: "web-0 at 2Gi"},
			wantNext:    Condition{Status: corev1.ConditionFalse, Reason: v1alpha1.ReasonOverWarn, Message: "web-0 at 2Gi", LastTransitionTime: now, LastUpdateTime: now},
			wantChanged: true,
		},
		"unchanged: current kept with its times, no write": {
			cur: cur, had: true,
			want:     Condition{Status: corev1.ConditionFalse, Reason: v1alpha1.ReasonOverWarn, Message: "web-0 at 2Gi"},
			wantNext: cur,
		},
		"same status, message changed: transition time kept, update time moves": {
			cur: cur, had: true,
			want:        Condition{Status: corev1.ConditionFalse, Reason: v1alpha1.ReasonOverWarn, Message: "web-0 at 2.5Gi"},
			wantNext:    Condition{Status: corev1.ConditionFalse, Reason: v1alpha1.ReasonOverWarn, Message: "web-0 at 2.5Gi", LastTransitionTime: earlier, LastUpdateTime: now},
			wantChanged: true,
		},
		"same status, reason changed: transition time kept, update time moves": {
			cur: cur, had: true,
			want:        Condition{Status: corev1.ConditionFalse, Reason: v1alpha1.ReasonOverRestart, Message: "web-0 at 2Gi"},
			wantNext:    Condition{Status: corev1.ConditionFalse, Reason: v1alpha1.ReasonOverRestart, Message: "web-0 at 2Gi", LastTransitionTime: earlier, LastUpdateTime: now},
			wantChanged: true,
		},
		"status changed: both times move": {
			cur: cur, had: true,
			want:        Condition{Status: corev1.ConditionTrue, Reason: v1alpha1.ReasonWithinLimits, Message: "all fine"},
			wantNext:    Condition{Status: corev1.ConditionTrue, Reason: v1alpha1.ReasonWithinLimits, Message: "all fine", LastTransitionTime: now, LastUpdateTime: now},
			wantChanged: true,
		},
		"status changed to Unknown: both times move": {
			cur: cur, had: true,
			want:        Condition{Status: corev1.ConditionUnknown, Reason: v1alpha1.ReasonStaleFigures, Message: "stale"},
			wantNext:    Condition{Status: corev1.ConditionUnknown, Reason: v1alpha1.ReasonStaleFigures, Message: "stale", LastTransitionTime: now, LastUpdateTime: now},
			wantChanged: true,
		},
		"times on want are ignored": {
			cur: cur, had: true,
			want:        Condition{Status: corev1.ConditionFalse, Reason: v1alpha1.ReasonOverWarn, Message: "web-0 at 3Gi", LastTransitionTime: then, LastUpdateTime: then},
			wantNext:    Condition{Status: corev1.ConditionFalse, Reason: v1alpha1.ReasonOverWarn, Message: "web-0 at 3Gi", LastTransitionTime: earlier, LastUpdateTime: now},
			wantChanged: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, changed := NextCondition(tc.cur, tc.had, tc.want, now)
			if diff := cmp.Diff(tc.wantNext, got); diff != "" {
				t.Errorf("NextCondition (-want +got):\n%s", diff)
			}
			if changed != tc.wantChanged {
				t.Errorf("NextCondition changed = %t, want %t", changed, tc.wantChanged)
			}
		})
	}
}
