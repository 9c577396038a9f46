package layerpolicy

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
)

const self = "logs"

// podSpec builds a selected pod's result: policies lists every policy selecting it (only
// self by default), under() adds its state under one of them.
type podSpec struct {
	name     string
	policies []string
	states   []evaluation.PolicyState
}

func pod(name string, policies ...string) *podSpec {
	if len(policies) == 0 {
		policies = []string{self}
	}
	return &podSpec{name: name, policies: policies}
}

// under records the pod's state under one policy, for container "app" with hot path /logs.
func (p *podSpec) under(policy string, state v1alpha1.LayerState, bytes int64) *podSpec {
	p.states = append(p.states, evaluation.PolicyState{Policy: policy, State: state, Container: "app", Bytes: bytes, HotPath: "/logs"})
	return p
}

func (p *podSpec) result() PodResult {
	// The overall decision is deliberately restart: Counts must use the policy's own state.
	return PodResult{Pod: p.name, Node: "node-" + p.name, Policies: p.policies,
		Decision: evaluation.Decision{Pod: p.name, State: v1alpha1.StateRestart, PolicyStates: p.states}}
}

func results(ps ...*podSpec) []PodResult {
	var out []PodResult
	for _, p := range ps {
		out = append(out, p.result())
	}
	return out
}

func offender(pod string, state v1alpha1.LayerState, bytes int64) v1alpha1.Offender {
	return v1alpha1.Offender{Pod: pod, Container: "app", Node: "node-" + pod, Bytes: bytes, State: state, HotPath: "/logs"}
}

func TestCounts(t *testing.T) {
	ok, warn, offload, restart := v1alpha1.StateOK, v1alpha1.StateWarn, v1alpha1.StateOffload, v1alpha1.StateRestart

	// twelve pods over warn, sizes 1..12, for the bound on offenders.
	var twelve []*podSpec
	var topTen []v1alpha1.Offender
	for i := 1; i <= 12; i++ {
		twelve = append(twelve, pod(fmt.Sprintf("p%02d", i)).under(self, warn, int64(i)))
	}
	for i := 12; i > 2; i-- {
		topTen = append(topTen, offender(fmt.Sprintf("p%02d", i), warn, int64(i)))
	}
	// twenty other policies, for the bound on overlapping policies.
	var others, firstSixteen []string
	for i := range 20 {
		others = append(others, fmt.Sprintf("other-%02d", i))
	}
	firstSixteen = others[:16]

	cases := map[string]struct {
		pods []PodResult
		want v1alpha1.LayerPolicyStatus
	}{
		"no pods": {},
		"all within limits": {
			pods: results(pod("a").under(self, ok, 10), pod("b").under(self, ok, 20)),
			want: v1alpha1.LayerPolicyStatus{MatchedPods: 2},
		},
		"pod without figures under this policy: matched only": {
			pods: results(pod("a"), pod("b").under("other", warn, 5)),
			want: v1alpha1.LayerPolicyStatus{MatchedPods: 2},
		},
		"empty state: not over": {
			pods: results(pod("a").under(self, "", 0)),
			want: v1alpha1.LayerPolicyStatus{MatchedPods: 1},
		},
		"one of each state": {
			pods: results(pod("a").under(self, ok, 1), pod("b").under(self, warn, 20), pod("c").under(self, offload, 30),
				pod("d").under(self, restart, 40)),
			want: v1alpha1.LayerPolicyStatus{MatchedPods: 4, OverLimitPods: 3,
				PodsByState: v1alpha1.PodStateCounts{Warn: 1, Offload: 1, Restart: 1},
				WorstOffenders: []v1alpha1.Offender{offender("d", restart, 40), offender("c", offload, 30),
					offender("b", warn, 20)}},
		},
		"counts by state": {
			pods: results(pod("a").under(self, warn, 1), pod("b").under(self, warn, 2), pod("c").under(self, restart, 3)),
			want: v1alpha1.LayerPolicyStatus{MatchedPods: 3, OverLimitPods: 3,
				PodsByState: v1alpha1.PodStateCounts{Warn: 2, Restart: 1},
				WorstOffenders: []v1alpha1.Offender{offender("c", restart, 3), offender("b", warn, 2),
					offender("a", warn, 1)}},
		},
		"the policy's own state, not another policy's": {
			pods: results(pod("a", self, "strict").under("strict", restart, 90).under(self, warn, 50)),
			want: v1alpha1.LayerPolicyStatus{MatchedPods: 1, OverLimitPods: 1,
				PodsByState:         v1alpha1.PodStateCounts{Warn: 1},
				WorstOffenders:      []v1alpha1.Offender{offender("a", warn, 50)},
				OverlappingPolicies: []string{"strict"}},
		},
		"within this policy, over another's: not counted": {
			pods: results(pod("a", self, "strict").under(self, ok, 50).under("strict", restart, 50)),
			want: v1alpha1.LayerPolicyStatus{MatchedPods: 1, OverlappingPolicies: []string{"strict"}},
		},
		"offenders by bytes, largest first, whatever the state": {
			pods: results(pod("a").under(self, restart, 10), pod("b").under(self, warn, 30), pod("c").under(self, offload, 20)),
			want: v1alpha1.LayerPolicyStatus{MatchedPods: 3, OverLimitPods: 3,
				PodsByState: v1alpha1.PodStateCounts{Warn: 1, Offload: 1, Restart: 1},
				WorstOffenders: []v1alpha1.Offender{offender("b", warn, 30), offender("c", offload, 20),
					offender("a", restart, 10)}},
		},
		"equal bytes: by pod name": {
			pods: results(pod("web-c").under(self, warn, 7), pod("web-a").under(self, warn, 7), pod("web-b").under(self, warn, 9)),
			want: v1alpha1.LayerPolicyStatus{MatchedPods: 3, OverLimitPods: 3,
				PodsByState: v1alpha1.PodStateCounts{Warn: 3},
				WorstOffenders: []v1alpha1.Offender{offender("web-b", warn, 9), offender("web-a", warn, 7),
					offender("web-c", warn, 7)}},
		},
		"offenders bounded at ten, the largest kept; counts are not bounded": {
			pods: results(twelve...),
			want: v1alpha1.LayerPolicyStatus{MatchedPods: 12, OverLimitPods: 12,
				PodsByState: v1alpha1.PodStateCounts{Warn: 12}, WorstOffenders: topTen},
		},
		"overlapping: others only, deduplicated, sorted": {
			pods: results(pod("a", "zeta", self, "alpha"), pod("b", self, "alpha"), pod("c", "mid", self)),
			want: v1alpha1.LayerPolicyStatus{MatchedPods: 3, OverlappingPolicies: []string{"alpha", "mid", "zeta"}},
		},
		"no other policy: no overlap": {
			pods: results(pod("a", self), pod("b", self)),
			want: v1alpha1.LayerPolicyStatus{MatchedPods: 2},
		},
		"overlapping bounded at sixteen, first by name": {
			pods: results(pod("a", append([]string{self}, others[10:]...)...), pod("b", append(others[:10:10], self)...)),
			want: v1alpha1.LayerPolicyStatus{MatchedPods: 2, OverlappingPolicies: firstSixteen},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Counts(self, tc.pods), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Counts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCountsOffenderFields(t *testing.T) {
	pr := PodResult{Pod: "web-0", Node: "node-7", Policies: []string{self},
		Decision: evaluation.Decision{PolicyStates: []evaluation.PolicyState{
			{Policy: self, State: v1alpha1.StateOffload, Container: "sidecar", Bytes: 5 << 30, HotPath: "/var/log/nginx"},
		}}}
	want := []v1alpha1.Offender{{Pod: "web-0", Container: "sidecar", Node: "node-7", Bytes: 5 << 30,
		State: v1alpha1.StateOffload, HotPath: "/var/log/nginx"}}
	if diff := cmp.Diff(want, Counts(self, []PodResult{pr}).WorstOffenders); diff != "" {
		t.Errorf("WorstOffenders (-want +got):\n%s", diff)
	}
}
