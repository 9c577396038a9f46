package podstate

import (
	"fmt"
	"maps"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
)

const (
	annBytes   = v1alpha1.AnnotationWritableLayerBytes
	annState   = v1alpha1.AnnotationState
	annHotPath = v1alpha1.AnnotationHotPath
	annPolicy  = v1alpha1.AnnotationPolicy
)

var allStates = []v1alpha1.LayerState{v1alpha1.StateOK, v1alpha1.StateWarn, v1alpha1.StateOffload, v1alpha1.StateRestart}

// ours returns our four annotations (hot path omitted when empty) plus any extra key/value pairs.
func ours(bytes, state, hotPath, policy string, extra ...string) map[string]string {
	m := map[string]string{annBytes: bytes, annState: state, annPolicy: policy}
	if hotPath != "" {
		m[annHotPath] = hotPath
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

func TestDesired(t *testing.T) {
	over := evaluation.Decision{Pod: "web-0", State: v1alpha1.StateWarn, Status: metav1.ConditionFalse,
		Reason: v1alpha1.ReasonOverWarn, Container: "app", Bytes: 3 << 30, HotPath: "/var/log/app", Policy: "logs"}
	noHotPath := over
	noHotPath.HotPath = ""
	pressure := over
	pressure.State, pressure.Reason, pressure.Policy = v1alpha1.StateOffload, v1alpha1.ReasonNodePressure, "node-guard"
	within := evaluation.Decision{Pod: "web-0", State: v1alpha1.StateOK, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonWithinLimits, Container: "app", Bytes: 1 << 20, HotPath: "/tmp", Policy: "logs"}
	unknown := evaluation.Decision{Pod: "web-0", Status: metav1.ConditionUnknown, Reason: v1alpha1.ReasonStaleFigures}

	cases := map[string]struct {
		covered  bool
		decision evaluation.Decision
		want     map[string]string
		wantKeep bool
	}{
		"not covered, over a threshold: remove ours": {covered: false, decision: over},
		"not covered, unknown: remove ours":          {covered: false, decision: unknown},
		"not covered, zero decision: remove ours":    {covered: false},
		"within limits: remove ours":                 {covered: true, decision: within},
		"unknown figures: keep what is there":        {covered: true, decision: unknown, wantKeep: true},
		"over warn: all four":                        {covered: true, decision: over, want: ours("3221225472", "warn", "/var/log/app", "logs")},
		"over warn without hot path: no hot-path key": {covered: true, decision: noHotPath,
			want: ours("3221225472", "warn", "", "logs")},
		"node pressure: deciding policy and state": {covered: true, decision: pressure,
			want: ours("3221225472", "offload", "/var/log/app", "node-guard")},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, keep := Desired(tc.covered, tc.decision)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Desired annotations (-want +got):\n%s", diff)
			}
			if keep != tc.wantKeep {
				t.Errorf("Desired keep = %t, want %t", keep, tc.wantKeep)
			}
		})
	}
}

func TestApply(t *testing.T) {
	const foreign, foreignValue = "deployment.kubernetes.io/revision", "3"
	cases := map[string]struct {
		current     map[string]string
		want        map[string]string
		wantOut     map[string]string
		wantChanged bool
	}{
		"nil current, nil want: nothing to do": {},
		"nil current, want ours: added": {
			want:    ours("1000", "warn", "/logs", "p"),
			wantOut: ours("1000", "warn", "/logs", "p"), wantChanged: true,
		},
		"empty current, nil want: nothing to do": {current: map[string]string{}},
		"foreign only, nil want: unchanged": {
			current: map[string]string{foreign: foreignValue},
			wantOut: map[string]string{foreign: foreignValue},
		},
		"foreign only, want ours: foreign kept beside ours": {
			current: map[string]string{foreign: foreignValue},
			want:    ours("1000", "warn", "/logs", "p"),
			wantOut: ours("1000", "warn", "/logs", "p", foreign, foreignValue), wantChanged: true,
		},
		"identical: unchanged": {
			current: ours("1000", "warn", "/logs", "p", foreign, foreignValue),
			want:    ours("1000", "warn", "/logs", "p"),
			wantOut: ours("1000", "warn", "/logs", "p", foreign, foreignValue),
		},
		"nil want removes every one of ours, foreign kept": {
			current: ours("1000", "restart", "/logs", "p", foreign, foreignValue),
			wantOut: map[string]string{foreign: foreignValue}, wantChanged: true,
		},
		"nil want removes a lone hot path": {
			current:     map[string]string{annHotPath: "/logs"},
			wantChanged: true,
		},
		"nil want removes a lone bytes": {
			current: map[string]string{annBytes: "1000"}, wantChanged: true,
		},
		"nil want removes a lone state": {
			current: map[string]string{annState: "warn"}, wantChanged: true,
		},
		"nil want removes a lone policy": {
			current: map[string]string{annPolicy: "p"}, wantChanged: true,
		},
		"nil want leaves look-alike keys": {
			current: map[string]string{"layerkeeper.dev/restart-reason": "x", "other.dev/state": "warn"},
			wantOut: map[string]string{"layerkeeper.dev/restart-reason": "x", "other.dev/state": "warn"},
		},
		"hot path no longer wanted: removed": {
			current: ours("1000", "warn", "/logs", "p"),
			want:    ours("1000", "warn", "", "p"),
			wantOut: ours("1000", "warn", "", "p"), wantChanged: true,
		},
		"bytes +4%, same state: not rewritten": {
			current: ours("1000", "warn", "/logs", "p"),
			want:    ours("1040", "warn", "/logs", "p"),
			wantOut: ours("1000", "warn", "/logs", "p"),
		},
		"bytes -4%, same state: not rewritten": {
			current: ours("1000", "warn", "/logs", "p"),
			want:    ours("960", "warn", "/logs", "p"),
			wantOut: ours("1000", "warn", "/logs", "p"),
		},
		"bytes +4.9%, same state: not rewritten": {
			current: ours("1000", "offload", "/logs", "p"),
			want:    ours("1049", "offload", "/logs", "p"),
			wantOut: ours("1000", "offload", "/logs", "p"),
		},
		"bytes exactly +5%: rewritten": {
			current: ours("1000", "warn", "/logs", "p"),
			want:    ours("1050", "warn", "/logs", "p"),
			wantOut: ours("1050", "warn", "/logs", "p"), wantChanged: true,
		},
		"bytes exactly -5%: rewritten": {
			current: ours("1000", "warn", "/logs", "p"),
			want:    ours("950", "warn", "/logs", "p"),
			wantOut: ours("950", "warn", "/logs", "p"), wantChanged: true,
		},
		"bytes doubled: rewritten": {
			current: ours("1000", "warn", "/logs", "p"),
			want:    ours("2000", "warn", "/logs", "p"),
			wantOut: ours("2000", "warn", "/logs", "p"), wantChanged: true,
		},
		"bytes +1% but state worse: both rewritten": {
			current: ours("1000", "warn", "/logs", "p"),
			want:    ours("1010", "offload", "/logs", "p"),
			wantOut: ours("1010", "offload", "/logs", "p"), wantChanged: true,
		},
		"bytes -1% but state better: both rewritten": {
			current: ours("1000", "restart", "/logs", "p"),
			want:    ours("990", "warn", "/logs", "p"),
			wantOut: ours("990", "warn", "/logs", "p"), wantChanged: true,
		},
		"bytes within tolerance, policy changed: policy rewritten, bytes kept": {
			current: ours("1000", "warn", "/logs", "p"),
			want:    ours("1010", "warn", "/logs", "q"),
			wantOut: ours("1000", "warn", "/logs", "q"), wantChanged: true,
		},
		"bytes within tolerance, hot path changed: hot path rewritten, bytes kept": {
			current: ours("1000", "warn", "/logs", "p"),
			want:    ours("1010", "warn", "/tmp", "p"),
			wantOut: ours("1000", "warn", "/tmp", "p"), wantChanged: true,
		},
		"bytes within tolerance, no state annotation yet: rewritten": {
			current: map[string]string{annBytes: "1000"},
			want:    ours("1010", "warn", "", "p"),
			wantOut: ours("1010", "warn", "", "p"), wantChanged: true,
		},
		"current bytes zero: rewritten": {
			current: ours("0", "warn", "", "p"),
			want:    ours("1", "warn", "", "p"),
			wantOut: ours("1", "warn", "", "p"), wantChanged: true,
		},
		"current bytes not a number: rewritten": {
			current: ours("3Gi", "warn", "", "p"),
			want:    ours("3221225472", "warn", "", "p"),
			wantOut: ours("3221225472", "warn", "", "p"), wantChanged: true,
		},
		"current bytes negative: rewritten": {
			current: ours("-1000", "warn", "", "p"),
			want:    ours("-1010", "warn", "", "p"),
			wantOut: ours("-1010", "warn", "", "p"), wantChanged: true,
		},
		"large figures within tolerance: not rewritten": {
			current: ours("107374182400", "restart", "", "p"), // 100Gi
			want:    ours("110595407872", "restart", "", "p"), // +3%
			wantOut: ours("107374182400", "restart", "", "p"),
		},
		"foreign value under one of our keys is ours to replace": {
			current: map[string]string{annState: "something-else", foreign: foreignValue},
			want:    ours("1000", "warn", "", "p"),
			wantOut: ours("1000", "warn", "", "p", foreign, foreignValue), wantChanged: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := maps.Clone(tc.current)
			got, changed := Apply(tc.current, tc.want)
			if diff := cmp.Diff(tc.wantOut, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Apply annotations (-want +got):\n%s", diff)
			}
			if changed != tc.wantChanged {
				t.Errorf("Apply changed = %t, want %t", changed, tc.wantChanged)
			}
			if diff := cmp.Diff(before, tc.current); diff != "" {
				t.Errorf("Apply modified its input (-before +after):\n%s", diff)
			}
			if got == nil {
				t.Errorf("Apply returned a nil map; callers set it as the object's annotations")
			}
		})
	}
}

// TestApplyFromDesired runs the two together the way the controller does over a sequence of
// scans: small growth leaves the pod alone, a state change or a large move writes.
func TestApplyFromDesired(t *testing.T) {
	scan := func(state v1alpha1.LayerState, bytes int64) evaluation.Decision {
		d := evaluation.Decision{Pod: "web-0", State: state, Status: metav1.ConditionFalse, Container: "app",
			Bytes: bytes, HotPath: "/var/log", Policy: "p"}
		if state == v1alpha1.StateOK {
			d.Status = metav1.ConditionTrue
		}
		return d
	}
	steps := []struct {
		decision    evaluation.Decision
		wantChanged bool
		wantBytes   string // "" when our annotations are gone
	}{
		{scan(v1alpha1.StateWarn, 1000), true, "1000"},
		{scan(v1alpha1.StateWarn, 1030), false, "1000"},
		{scan(v1alpha1.StateWarn, 1049), false, "1000"},
		{scan(v1alpha1.StateWarn, 1050), true, "1050"},
		{scan(v1alpha1.StateOffload, 1060), true, "1060"},
		{scan(v1alpha1.StateOffload, 1060), false, "1060"},
		{scan(v1alpha1.StateOK, 10), true, ""},
		{scan(v1alpha1.StateOK, 10), false, ""},
	}
	annotations := map[string]string{"team": "payments"}
	for i, s := range steps {
		want, keep := Desired(true, s.decision)
		if keep {
			t.Fatalf("step %d: Desired keep = true for a decided pod", i)
		}
		var changed bool
		annotations, changed = Apply(annotations, want)
		if changed != s.wantChanged {
			t.Errorf("step %d (%s, %d bytes): changed = %t, want %t", i, s.decision.State, s.decision.Bytes, changed, s.wantChanged)
		}
		if got := annotations[annBytes]; got != s.wantBytes {
			t.Errorf("step %d: bytes annotation = %q, want %q", i, got, s.wantBytes)
		}
		if got := annotations["team"]; got != "payments" {
			t.Errorf("step %d: foreign annotation = %q, want it kept", i, got)
		}
	}
}

func TestStateOf(t *testing.T) {
	cases := map[string]struct {
		annotations map[string]string
		want        v1alpha1.LayerState
	}{
		"nil map":               {want: v1alpha1.StateOK},
		"empty map":             {annotations: map[string]string{}, want: v1alpha1.StateOK},
		"other annotations":     {annotations: map[string]string{"a": "warn"}, want: v1alpha1.StateOK},
		"ok":                    {annotations: map[string]string{annState: "ok"}, want: v1alpha1.StateOK},
		"warn":                  {annotations: map[string]string{annState: "warn"}, want: v1alpha1.StateWarn},
		"offload":               {annotations: map[string]string{annState: "offload"}, want: v1alpha1.StateOffload},
		"restart":               {annotations: map[string]string{annState: "restart"}, want: v1alpha1.StateRestart},
		"empty value":           {annotations: map[string]string{annState: ""}, want: v1alpha1.StateOK},
		"unknown value":         {annotations: map[string]string{annState: "exploded"}, want: v1alpha1.StateOK},
		"wrong case is unknown": {annotations: map[string]string{annState: "Warn"}, want: v1alpha1.StateOK},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, StateOf(tc.annotations)); diff != "" {
				t.Errorf("StateOf(%v) (-want +got):\n%s", tc.annotations, diff)
			}
		})
	}
}

func TestRank(t *testing.T) {
	cases := map[v1alpha1.LayerState]int{
		v1alpha1.StateOK:      0,
		v1alpha1.StateWarn:    1,
		v1alpha1.StateOffload: 2,
		v1alpha1.StateRestart: 3,
		"":                    0,
		"exploded":            0,
	}
	for s, want := range cases {
		if got := Rank(s); got != want {
			t.Errorf("Rank(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestTransition(t *testing.T) {
	type event struct{ Type, Reason string }
	worse := event{"Warning", v1alpha1.EventWritableLayerOverLimit}
	back := event{"Normal", v1alpha1.EventWritableLayerBackWithinLimits}
	none := event{}
	ok, warn, offload, restart := v1alpha1.StateOK, v1alpha1.StateWarn, v1alpha1.StateOffload, v1alpha1.StateRestart
	// want[from][to]
	want := map[v1alpha1.LayerState]map[v1alpha1.LayerState]event{
		ok:      {ok: none, warn: worse, offload: worse, restart: worse},
		warn:    {ok: back, warn: none, offload: worse, restart: worse},
		offload: {ok: back, warn: none, offload: none, restart: worse},
		restart: {ok: back, warn: none, offload: none, restart: none},
	}
	for _, from := range allStates {
		for _, to := range allStates {
			t.Run(fmt.Sprintf("%s to %s", from, to), func(t *testing.T) {
				typ, reason := Transition(from, to)
				if diff := cmp.Diff(want[from][to], event{typ, reason}); diff != "" {
					t.Errorf("Transition(%s, %s) (-want +got):\n%s", from, to, diff)
				}
			})
		}
	}
}
