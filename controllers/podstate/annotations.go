package podstate

import (
	"maps"
	"strconv"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
)

// OurAnnotations are the annotations layerkeeper owns on pods and workloads.
var OurAnnotations = []string{
	v1alpha1.AnnotationWritableLayerBytes,
	v1alpha1.AnnotationState,
	v1alpha1.AnnotationHotPath,
	v1alpha1.AnnotationPolicy,
}

// BytesTolerance is the relative change of the size below which the bytes annotation is not
// rewritten (a growing log would otherwise cost an API write on every scan).
const BytesTolerance = 0.05

// Desired returns the annotations an object should carry for a decision: ours set when the
// pod is over a threshold, removed when it is within limits or no longer covered, and left as
// they are when the figures are missing or stale (nil, keep=true).
func Desired(covered bool, d evaluation.Decision) (want map[string]string, keep bool) {
	if !covered {
		return nil, false
	}
	switch d.Status {
	case "Unknown":
		return nil, true
	case "True":
		return nil, false
	}
	want = map[string]string{
		v1alpha1.AnnotationWritableLayerBytes: strconv.FormatInt(d.Bytes, 10),
		v1alpha1.AnnotationState:              string(d.State),
		v1alpha1.AnnotationPolicy:             d.Policy,
	}
	if d.HotPath != "" {
		want[v1alpha1.AnnotationHotPath] = d.HotPath
	}
	return want, false
}

// Apply returns current annotations changed to carry want (nil: none of ours), and whether
// anything changed. A bytes figure within BytesTolerance of the current one is not rewritten.
func Apply(current map[string]string, want map[string]string) (map[string]string, bool) {
	out := maps.Clone(current)
	if out == nil {
		out = map[string]string{}
	}
	changed := false
	for _, k := range OurAnnotations {
		cur, has := out[k]
		w, wantIt := want[k]
		switch {
		case !wantIt && has:
			delete(out, k)
			changed = true
		case wantIt && (!has || cur != w):
			if k == v1alpha1.AnnotationWritableLayerBytes && has && withinTolerance(cur, w) &&
				out[v1alpha1.AnnotationState] == want[v1alpha1.AnnotationState] {
				continue
			}
			out[k] = w
			changed = true
		}
	}
	return out, changed
}

func withinTolerance(cur, want string) bool {
	c, err1 := strconv.ParseInt(cur, 10, 64)
	w, err2 := strconv.ParseInt(want, 10, 64)
	if err1 != nil || err2 != nil || c <= 0 {
		return false
	}
	diff := float64(w - c)
	if diff < 0 {
		diff = -diff
	}
	return diff/float64(c) < BytesTolerance
}

// StateOf reads the state annotation (ok when absent or unknown).
func StateOf(annotations map[string]string) v1alpha1.LayerState {
	switch s := v1alpha1.LayerState(annotations[v1alpha1.AnnotationState]); s {
	case v1alpha1.StateWarn, v1alpha1.StateOffload, v1alpha1.StateRestart:
		return s
	default:
		return v1alpha1.StateOK
	}
}

// Rank orders states, best first.
func Rank(s v1alpha1.LayerState) int { return evaluation.StateRank(s) }

// Transition names the event for a state change, or "" when none is due: an event when the
// state gets worse, and one when it returns to ok.
func Transition(from, to v1alpha1.LayerState) (eventType, reason string) {
	switch {
	case Rank(to) > Rank(from):
		return "Warning", v1alpha1.EventWritableLayerOverLimit
	case to == v1alpha1.StateOK && from != v1alpha1.StateOK:
		return "Normal", v1alpha1.EventWritableLayerBackWithinLimits
	}
	return "", ""
}
