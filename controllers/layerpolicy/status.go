package layerpolicy

import (
	"slices"
	"strings"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
)

// MaxOffenders bounds status.worstOffenders.
const MaxOffenders = 10

// PodResult is one selected pod's evaluation, as the status needs it.
type PodResult struct {
	Pod, Node string
	Decision  evaluation.Decision
	// Policies are the names of every policy selecting the pod.
	Policies []string
}

// Counts folds the selected pods' results into the policy's status figures (everything but
// conditions, observedGeneration and lastActions).
func Counts(policy string, pods []PodResult) v1alpha1.LayerPolicyStatus {
	st := v1alpha1.LayerPolicyStatus{MatchedPods: int32(len(pods))}
	overlap := map[string]bool{}
	var offenders []v1alpha1.Offender
	for _, pr := range pods {
		for _, other := range pr.Policies {
			if other != policy {
				overlap[other] = true
			}
		}
		var ps *evaluation.PolicyState
		for i := range pr.Decision.PolicyStates {
			if pr.Decision.PolicyStates[i].Policy == policy {
				ps = &pr.Decision.PolicyStates[i]
			}
		}
		if ps == nil || ps.State == v1alpha1.StateOK || ps.State == "" {
			continue
		}
		st.OverLimitPods++
		switch ps.State {
		case v1alpha1.StateWarn:
			st.PodsByState.Warn++
		case v1alpha1.StateOffload:
			st.PodsByState.Offload++
		case v1alpha1.StateRestart:
			st.PodsByState.Restart++
		}
		offenders = append(offenders, v1alpha1.Offender{Pod: pr.Pod, Container: ps.Container, Node: pr.Node,
			Bytes: ps.Bytes, State: ps.State, HotPath: ps.HotPath})
	}
	slices.SortFunc(offenders, func(a, b v1alpha1.Offender) int {
		if a.Bytes != b.Bytes {
			if a.Bytes > b.Bytes {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Pod+"/"+a.Container, b.Pod+"/"+b.Container)
	})
	if len(offenders) > MaxOffenders {
		offenders = offenders[:MaxOffenders]
	}
	st.WorstOffenders = offenders
	for name := range overlap {
		st.OverlappingPolicies = append(st.OverlappingPolicies, name)
	}
	slices.Sort(st.OverlappingPolicies)
	if len(st.OverlappingPolicies) > 16 {
		st.OverlappingPolicies = st.OverlappingPolicies[:16]
	}
	return st
}
