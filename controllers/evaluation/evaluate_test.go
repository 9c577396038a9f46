package evaluation

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// summary is the part of a Decision most cases check; messages have their own table.
type summary struct {
	State       v1alpha1.LayerState
	Status      metav1.ConditionStatus
	Reason      string
	Container   string
	Policy      string
	Predicted   bool
	Action      Action
	TimeToLimit *time.Duration
	Overlapping []string
}

func summarize(d Decision) summary {
	return summary{
		State: d.State, Status: d.Status, Reason: d.Reason, Container: d.Container, Policy: d.Policy,
		Predicted: d.Predicted, Action: d.Action, TimeToLimit: d.TimeToLimit, Overlapping: d.Overlapping,
	}
}

func within(container, policy string) summary {
	return summary{State: v1alpha1.StateOK, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonWithinLimits,
		Container: container, Policy: policy, Action: noAction}
}

func over(state v1alpha1.LayerState, container, policy string) summary {
	return summary{State: state, Status: metav1.ConditionFalse, Reason: reasonFor(state, false),
		Container: container, Policy: policy, Action: noAction}
}

func (s summary) act(a Action) summary             { s.Action = a; return s }
func (s summary) ttl(d time.Duration) summary      { s.TimeToLimit = &d; return s }
func (s summary) predicted() summary               { s.Predicted = true; return s }
func (s summary) overlaps(names ...string) summary { s.Overlapping = names; return s }
func (s summary) reason(r string) summary          { s.Reason = r; return s }
func offloadOf(container, policy string) Action {
	return Action{Kind: ActionOffload, Policy: policy, Container: container}
}
func restartOf(container, policy string, first bool) Action {
	return Action{Kind: ActionRestart, Policy: policy, Container: container, OffloadFirst: first}
}

var unknownNoFigures = summary{State: v1alpha1.StateOK, Status: metav1.ConditionUnknown, Reason: v1alpha1.ReasonNoFigures, Action: noAction}
var unknownStale = summary{State: v1alpha1.StateOK, Status: metav1.ConditionUnknown, Reason: v1alpha1.ReasonStaleFigures, Action: noAction}

func TestEvaluateFigures(t *testing.T) {
	enforceAll := makePolicy("p").Warn("1Gi").Offload("2Gi").Restart("3Gi").Enforce().ShipTo("/logs")
	cases := map[string]struct {
		policies   []*v1alpha1.LayerPolicy
		pod        PodFigures
		now        time.Time
		staleAfter time.Duration
		want       summary
	}{
		"no policy selects the pod": {
			pod:  makePod("web").Container("app", 9*Gi).Obj(),
			want: within("", ""),
		},
		"nil policies are ignored": {
			policies: []*v1alpha1.LayerPolicy{nil},
			pod:      makePod("web").Container("app", 9*Gi).Obj(),
			want:     within("", ""),
		},
		"no report yet": {
			policies: policies(enforceAll),
			pod:      makePod("web").NoReport().Obj(),
			want:     unknownNoFigures,
		},
		"no report yet, two policies: both listed as overlapping": {
			policies: policies(makePolicy("b").Warn("1Gi"), makePolicy("a").Warn("1Gi")),
			pod:      makePod("web").NoReport().Obj(),
			want:     unknownNoFigures.overlaps("a", "b"),
		},
		"report without the pod": {
			policies: policies(enforceAll),
			pod:      makePod("web").Obj(),
			want:     unknownNoFigures,
		},
		"only stopped containers": {
			policies: policies(enforceAll),
			pod:      makePod("web").Container("app", 9*Gi).Stopped().Obj(),
			want:     unknownNoFigures,
		},
		"spec.containers names no container of the pod": {
			policies: policies(makePolicy("p").Warn("1Gi").Containers("sidecar")),
			pod:      makePod("web").Container("app", 9*Gi).Obj(),
			want:     unknownNoFigures,
		},
		"stale report: no action even far over restart": {
			policies: policies(enforceAll),
			pod:      makePod("web").Container("app", 9*Gi).ReportedAt(t0.Add(-6 * time.Minute)).Obj(),
			now:      t0,
			want:     unknownStale,
		},
		"report exactly StaleAfter old is still fresh": {
			policies: policies(enforceAll),
			pod:      makePod("web").Container("app", 9*Gi).ReportedAt(t0.Add(-DefaultStaleAfter)).Obj(),
			now:      t0,
			want:     over(v1alpha1.StateRestart, "app", "p").act(restartOf("app", "p", true)),
		},
		"custom StaleAfter keeps a 30m old report fresh": {
			policies:   policies(makePolicy("p").Warn("1Gi")),
			pod:        makePod("web").Container("app", 2*Gi).ReportedAt(t0.Add(-30 * time.Minute)).Obj(),
			now:        t0,
			staleAfter: time.Hour,
			want:       over(v1alpha1.StateWarn, "app", "p"),
		},
		"custom StaleAfter makes a 2m old report stale": {
			policies:   policies(makePolicy("p").Warn("1Gi")),
			pod:        makePod("web").Container("app", 2*Gi).ReportedAt(t0.Add(-2 * time.Minute)).Obj(),
			now:        t0,
			staleAfter: time.Minute,
			want:       unknownStale,
		},
		"report from the future (clock skew) is fresh": {
			policies: policies(makePolicy("p").Warn("1Gi")),
			pod:      makePod("web").Container("app", 2*Gi).ReportedAt(t0.Add(time.Hour)).Obj(),
			now:      t0,
			want:     over(v1alpha1.StateWarn, "app", "p"),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			n := tc.now
			if n.IsZero() {
				n = now
			}
			got := Evaluate(Input{Policies: tc.policies, Pod: tc.pod, Now: n, StaleAfter: tc.staleAfter})
			if d := diffOf(tc.want, summarize(got)); d != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestEvaluateThresholds(t *testing.T) {
	cases := map[string]struct {
		policies []*v1alpha1.LayerPolicy
		pod      PodFigures
		want     summary
	}{
		"under every threshold": {
			policies: policies(makePolicy("p").Warn("3Gi").Offload("4Gi").Restart("6Gi")),
			pod:      makePod("web").Container("app", 2*Gi).Obj(),
			want:     within("app", "p"),
		},
		"one byte under warn": {
			policies: policies(makePolicy("p").Warn("3Gi")),
			pod:      makePod("web").Container("app", 3*Gi-1).Obj(),
			want:     within("app", "p"),
		},
		"exactly at warn counts as over (>=)": {
			policies: policies(makePolicy("p").Warn("3Gi")),
			pod:      makePod("web").Container("app", 3*Gi).Obj(),
			want:     over(v1alpha1.StateWarn, "app", "p"),
		},
		"over warn in Enforce: no action": {
			policies: policies(makePolicy("p").Warn("3Gi").Offload("4Gi").Enforce().ShipTo("/logs")),
			pod:      makePod("web").Container("app", 3*Gi+Mi).Obj(),
			want:     over(v1alpha1.StateWarn, "app", "p"),
		},
		"exactly at offload in Enforce: offload": {
			policies: policies(makePolicy("p").Warn("3Gi").Offload("4Gi").Enforce().ShipTo("/logs")),
			pod:      makePod("web").Container("app", 4*Gi).Obj(),
			want:     over(v1alpha1.StateOffload, "app", "p").act(offloadOf("app", "p")),
		},
		"over offload in Audit: no action": {
			policies: policies(makePolicy("p").Offload("4Gi").ShipTo("/logs")),
			pod:      makePod("web").Container("app", 5*Gi).Obj(),
			want:     over(v1alpha1.StateOffload, "app", "p"),
		},
		"over offload in Enforce without a bucket: state offload, nothing to ship": {
			policies: policies(makePolicy("p").Offload("4Gi").Enforce()),
			pod:      makePod("web").Container("app", 5*Gi).Obj(),
			want:     over(v1alpha1.StateOffload, "app", "p"),
		},
		"exactly at restart in Enforce: restart, offloading first": {
			policies: policies(makePolicy("p").Offload("4Gi").Restart("6Gi").Enforce().ShipTo("/logs")),
			pod:      makePod("web").Container("app", 6*Gi).Obj(),
			want:     over(v1alpha1.StateRestart, "app", "p").act(restartOf("app", "p", true)),
		},
		"restart with offloadBeforeRestart=false": {
			policies: policies(makePolicy("p").Offload("4Gi").Restart("6Gi").Enforce().ShipTo("/logs").OffloadBeforeRestart(false)),
			pod:      makePod("web").Container("app", 7*Gi).Obj(),
			want:     over(v1alpha1.StateRestart, "app", "p").act(restartOf("app", "p", false)),
		},
		"restart without a bucket: nothing to ship first": {
			policies: policies(makePolicy("p").Restart("6Gi").Enforce()),
			pod:      makePod("web").Container("app", 7*Gi).Obj(),
			want:     over(v1alpha1.StateRestart, "app", "p").act(restartOf("app", "p", false)),
		},
		"restart with remediation action None is still asked for (CheckRemediation skips it)": {
			policies: policies(makePolicy("p").Restart("6Gi").Enforce().Action(v1alpha1.ActionNone)),
			pod:      makePod("web").Container("app", 7*Gi).Obj(),
			want:     over(v1alpha1.StateRestart, "app", "p").act(restartOf("app", "p", false)),
		},
		"restart in Audit: no action": {
			policies: policies(makePolicy("p").Restart("6Gi")),
			pod:      makePod("web").Container("app", 7*Gi).Obj(),
			want:     over(v1alpha1.StateRestart, "app", "p"),
		},
		"only restart set, under it": {
			policies: policies(makePolicy("p").Restart("6Gi").Enforce()),
			pod:      makePod("web").Container("app", 5*Gi).Obj(),
			want:     within("app", "p"),
		},
		"only warn set, far over it": {
			policies: policies(makePolicy("p").Warn("1Gi").Enforce()),
			pod:      makePod("web").Container("app", 50*Gi).Obj(),
			want:     over(v1alpha1.StateWarn, "app", "p"),
		},
		"only offload set, over it": {
			policies: policies(makePolicy("p").Offload("1Gi").Enforce().ShipTo("/logs")),
			pod:      makePod("web").Container("app", 50*Gi).Obj(),
			want:     over(v1alpha1.StateOffload, "app", "p").act(offloadOf("app", "p")),
		},
		"no threshold at all": {
			policies: policies(makePolicy("p")),
			pod:      makePod("web").Container("app", 50*Gi).Obj(),
			want:     within("app", "p"),
		},
		"decimal quantities compare as bytes": {
			policies: policies(makePolicy("p").Warn("3G")),
			pod:      makePod("web").Container("app", 3_000_000_000).Obj(),
			want:     over(v1alpha1.StateWarn, "app", "p"),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := Evaluate(Input{Policies: tc.policies, Pod: tc.pod, Now: now})
			if d := diffOf(tc.want, summarize(got)); d != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestEvaluateContainers(t *testing.T) {
	p := makePolicy("p").Warn("1Gi").Offload("2Gi").Restart("4Gi").Enforce().ShipTo("/logs")
	cases := map[string]struct {
		policies []*v1alpha1.LayerPolicy
		pod      PodFigures
		want     summary
	}{
		"worst container decides": {
			policies: policies(p),
			pod:      makePod("web").Container("app", 1*Gi).Container("sidecar", 3*Gi).Container("proxy", Mi).Obj(),
			want:     over(v1alpha1.StateOffload, "sidecar", "p").act(offloadOf("sidecar", "p")),
		},
		"same state: the larger container decides": {
			policies: policies(p),
			pod:      makePod("web").Container("a", 1*Gi+Mi).Container("b", 1*Gi+2*Mi).Obj(),
			want:     over(v1alpha1.StateWarn, "b", "p"),
		},
		"same state and size: the name decides": {
			policies: policies(p),
			pod:      makePod("web").Container("b", 1*Gi).Container("a", 1*Gi).Obj(),
			want:     over(v1alpha1.StateWarn, "a", "p"),
		},
		"all ok: the largest container is named": {
			policies: policies(p),
			pod:      makePod("web").Container("a", Mi).Container("b", 2*Mi).Obj(),
			want:     within("b", "p"),
		},
		"pod action is the strongest container action": {
			policies: policies(p),
			pod:      makePod("web").Container("a", 5*Gi).Container("b", 3*Gi).Obj(),
			want:     over(v1alpha1.StateRestart, "a", "p").act(restartOf("a", "p", true)),
		},
		"equal actions: the larger container's is the pod's": {
			policies: policies(p),
			pod:      makePod("web").Container("a", 3*Gi).Container("b", 3*Gi+Mi).Obj(),
			want:     over(v1alpha1.StateOffload, "b", "p").act(offloadOf("b", "p")),
		},
		"spec.containers leaves a huge container out": {
			policies: policies(makePolicy("p").Warn("1Gi").Containers("app")),
			pod:      makePod("web").Container("app", Mi).Container("cache", 90*Gi).Obj(),
			want:     within("app", "p"),
		},
		"spec.containers selects the offender": {
			policies: policies(makePolicy("p").Warn("1Gi").Containers("cache", "app")),
			pod:      makePod("web").Container("app", Mi).Container("cache", 90*Gi).Obj(),
			want:     over(v1alpha1.StateWarn, "cache", "p"),
		},
		"stopped container is ignored, the running one decides": {
			policies: policies(p),
			pod:      makePod("web").Container("app", 90*Gi).Stopped().Container("app", Mi).Obj(),
			want:     within("app", "p"),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := Evaluate(Input{Policies: tc.policies, Pod: tc.pod, Now: now})
			if d := diffOf(tc.want, summarize(got)); d != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestEvaluateOverlappingPolicies(t *testing.T) {
	cases := map[string]struct {
		policies []*v1alpha1.LayerPolicy
		pod      PodFigures
		want     summary
	}{
		"smaller warn wins and decides": {
			policies: policies(makePolicy("team").Warn("5Gi"), makePolicy("platform").Warn("2Gi")),
			pod:      makePod("web").Container("app", 3*Gi).Obj(),
			want:     over(v1alpha1.StateWarn, "app", "platform").overlaps("team"),
		},
		"both crossed: the smaller threshold decides": {
			policies: policies(makePolicy("a-loose").Warn("5Gi"), makePolicy("b-tight").Warn("2Gi")),
			pod:      makePod("web").Container("app", 6*Gi).Obj(),
			want:     over(v1alpha1.StateWarn, "app", "b-tight").overlaps("a-loose"),
		},
		"per threshold: warn from one policy, offload from the other": {
			policies: policies(
				makePolicy("team").Warn("1Gi").Offload("8Gi").Enforce().ShipTo("/logs"),
				makePolicy("platform").Warn("4Gi").Offload("3Gi").Enforce().ShipTo("/var/log"),
			),
			pod:  makePod("web").Container("app", 3*Gi).Obj(),
			want: over(v1alpha1.StateOffload, "app", "platform").act(offloadOf("app", "platform")).overlaps("team"),
		},
		"equal thresholds: the Enforce policy decides and acts": {
			policies: policies(
				makePolicy("a-audit").Offload("3Gi").ShipTo("/logs"),
				makePolicy("b-enforce").Offload("3Gi").Enforce().ShipTo("/logs"),
			),
			pod:  makePod("web").Container("app", 3*Gi).Obj(),
			want: over(v1alpha1.StateOffload, "app", "b-enforce").act(offloadOf("app", "b-enforce")).overlaps("a-audit"),
		},
		"smaller Audit threshold crossed, larger Enforce one not: state but no action": {
			policies: policies(
				makePolicy("audit").Offload("3Gi").ShipTo("/logs"),
				makePolicy("enforce").Offload("6Gi").Enforce().ShipTo("/logs"),
			),
			pod:  makePod("web").Container("app", 4*Gi).Obj(),
			want: over(v1alpha1.StateOffload, "app", "audit").overlaps("enforce"),
		},
		"both crossed at the same level: the Enforce policy decides even with a larger threshold": {
			policies: policies(
				makePolicy("audit").Offload("3Gi").ShipTo("/logs"),
				makePolicy("enforce").Offload("6Gi").Enforce().ShipTo("/logs"),
			),
			pod:  makePod("web").Container("app", 7*Gi).Obj(),
			want: over(v1alpha1.StateOffload, "app", "enforce").act(offloadOf("app", "enforce")).overlaps("audit"),
		},
		"Audit policy decides a higher state, the Enforce policy still gets its offload": {
			policies: policies(
				makePolicy("audit").Restart("5Gi"),
				makePolicy("enforce").Offload("4Gi").Restart("9Gi").Enforce().ShipTo("/logs"),
			),
			pod:  makePod("web").Container("app", 6*Gi).Obj(),
			want: over(v1alpha1.StateRestart, "app", "audit").act(offloadOf("app", "enforce")).overlaps("enforce"),
		},
		"two Enforce policies ask for different actions: the strongest wins": {
			policies: policies(
				makePolicy("a").Offload("2Gi").Enforce().ShipTo("/logs"),
				makePolicy("b").Restart("5Gi").Enforce(),
			),
			pod:  makePod("web").Container("app", 6*Gi).Obj(),
			want: over(v1alpha1.StateRestart, "app", "b").act(restartOf("app", "b", false)).overlaps("a"),
		},
		"each policy's spec.containers applies to its own thresholds": {
			policies: policies(
				makePolicy("app-only").Warn("1Gi").Containers("app"),
				makePolicy("all").Warn("10Gi"),
			),
			pod:  makePod("web").Container("app", Mi).Container("sidecar", 5*Gi).Obj(),
			want: within("sidecar", "all").overlaps("app-only"),
		},
		"ok pod: the policy with the nearest threshold is named": {
			policies: policies(makePolicy("far").Warn("10Gi").Enforce(), makePolicy("near").Warn("2Gi")),
			pod:      makePod("web").Container("app", Gi).Obj(),
			want:     within("app", "near").overlaps("far"),
		},
		"ok pod: a policy with thresholds is named before one without": {
			policies: policies(makePolicy("a-none"), makePolicy("b-some").Restart("20Gi")),
			pod:      makePod("web").Container("app", Gi).Obj(),
			want:     within("app", "b-some").overlaps("a-none"),
		},
		"same policy listed twice": {
			policies: policies(makePolicy("p").Warn("1Gi"), makePolicy("p").Warn("1Gi")),
			pod:      makePod("web").Container("app", 2*Gi).Obj(),
			want:     over(v1alpha1.StateWarn, "app", "p").overlaps(),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := Evaluate(Input{Policies: tc.policies, Pod: tc.pod, Now: now})
			if d := diffOf(tc.want, summarize(got)); d != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestEvaluateGrowth(t *testing.T) {
	// 100Mi/min closes 1Gi in 10.24 minutes.
	const rate = 100 * Mi
	tenMin := time.Duration(float64(Gi) / float64(rate) * float64(time.Minute))
	cases := map[string]struct {
		policies []*v1alpha1.LayerPolicy
		pod      PodFigures
		want     summary
	}{
		"growing under warn: time to warn": {
			policies: policies(makePolicy("p").Warn("3Gi").Offload("4Gi")),
			pod:      makePod("web").Container("app", 2*Gi).Growth(rate).Obj(),
			want:     within("app", "p").ttl(tenMin),
		},
		"over warn, growing: time to the next threshold (offload)": {
			policies: policies(makePolicy("p").Warn("3Gi").Offload("4Gi")),
			pod:      makePod("web").Container("app", 3*Gi).Growth(rate).Obj(),
			want:     over(v1alpha1.StateWarn, "app", "p").ttl(tenMin),
		},
		"next threshold comes from another policy": {
			policies: policies(makePolicy("a").Warn("3Gi"), makePolicy("b").Restart("5Gi")),
			pod:      makePod("web").Container("app", 4*Gi).Growth(rate).Obj(),
			want:     over(v1alpha1.StateWarn, "app", "a").ttl(tenMin).overlaps("b"),
		},
		"over the last threshold: no time to limit": {
			policies: policies(makePolicy("p").Warn("3Gi")),
			pod:      makePod("web").Container("app", 4*Gi).Growth(rate).Obj(),
			want:     over(v1alpha1.StateWarn, "app", "p"),
		},
		"zero growth: no time to limit": {
			policies: policies(makePolicy("p").Warn("3Gi")),
			pod:      makePod("web").Container("app", 2*Gi).Obj(),
			want:     within("app", "p"),
		},
		"shrinking: no time to limit": {
			policies: policies(makePolicy("p").Warn("3Gi")),
			pod:      makePod("web").Container("app", 2*Gi).Growth(-rate).Obj(),
			want:     within("app", "p"),
		},
		"leadTime: reaching offload within it counts as crossed": {
			policies: policies(makePolicy("p").Warn("1Gi").Offload("4Gi").LeadTime(15 * time.Minute).Enforce().ShipTo("/logs")),
			pod:      makePod("web").Container("app", 3*Gi).Growth(rate).Obj(),
			want:     over(v1alpha1.StateOffload, "app", "p").predicted().act(offloadOf("app", "p")).ttl(tenMin),
		},
		"leadTime: reaching it exactly at the lead time counts (inclusive)": {
			policies: policies(makePolicy("p").Offload("4Gi").LeadTime(tenMin).Enforce().ShipTo("/logs")),
			pod:      makePod("web").Container("app", 3*Gi).Growth(rate).Obj(),
			want:     over(v1alpha1.StateOffload, "app", "p").predicted().act(offloadOf("app", "p")).ttl(tenMin),
		},
		"leadTime: reaching it later does not count": {
			policies: policies(makePolicy("p").Offload("4Gi").LeadTime(10 * time.Minute).Enforce().ShipTo("/logs")),
			pod:      makePod("web").Container("app", 3*Gi).Growth(rate).Obj(),
			want:     within("app", "p").ttl(tenMin),
		},
		"leadTime with zero growth: only sizes count": {
			policies: policies(makePolicy("p").Offload("4Gi").LeadTime(time.Hour)),
			pod:      makePod("web").Container("app", 3*Gi).Obj(),
			want:     within("app", "p"),
		},
		"leadTime while shrinking: only sizes count": {
			policies: policies(makePolicy("p").Offload("4Gi").LeadTime(time.Hour)),
			pod:      makePod("web").Container("app", 3*Gi).Growth(-rate).Obj(),
			want:     within("app", "p"),
		},
		"leadTime zero: only sizes count": {
			policies: policies(makePolicy("p").Offload("4Gi").LeadTime(0)),
			pod:      makePod("web").Container("app", 3*Gi).Growth(rate).Obj(),
			want:     within("app", "p").ttl(tenMin),
		},
		"predicted restart beats actual offload": {
			policies: policies(makePolicy("p").Offload("2Gi").Restart("4Gi").LeadTime(time.Hour).Enforce().ShipTo("/logs")),
			pod:      makePod("web").Container("app", 3*Gi).Growth(rate).Obj(),
			want:     over(v1alpha1.StateRestart, "app", "p").predicted().act(restartOf("app", "p", true)).ttl(tenMin),
		},
		"actual crossing decides before a prediction at the same level": {
			policies: policies(
				makePolicy("a-predicts").Warn("4Gi").LeadTime(time.Hour),
				makePolicy("b-actual").Warn("3Gi"),
			),
			pod:  makePod("web").Container("app", 3*Gi).Growth(rate).Obj(),
			want: over(v1alpha1.StateWarn, "app", "b-actual").ttl(tenMin).overlaps("a-predicts"),
		},
		"a policy's leadTime beats another's smaller threshold": {
			policies: policies(
				makePolicy("small").Restart("10Gi").Enforce(),
				makePolicy("early").Restart("12Gi").LeadTime(2*time.Hour).Enforce(),
			),
			pod:  makePod("web").Container("app", 9*Gi).Growth(rate).Obj(),
			want: over(v1alpha1.StateRestart, "app", "early").predicted().act(restartOf("app", "early", false)).ttl(tenMin).overlaps("small"),
		},
		"a huge distance at a tiny rate saturates instead of overflowing": {
			policies: policies(makePolicy("p").Warn("8Ei")),
			pod:      makePod("web").Container("app", 1).Growth(1).Obj(),
			want:     within("app", "p").ttl(time.Duration(1<<63 - 1)),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := Evaluate(Input{Policies: tc.policies, Pod: tc.pod, Now: now})
			if d := diffOf(tc.want, summarize(got)); d != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestEvaluateNodePressure(t *testing.T) {
	// 100Gi filesystem with 8Gi free; a 15% margin needs 7Gi back.
	short := fsUsage(8*Gi, 500_000)
	pressure := makePolicy("p").Warn("20Gi").Offload("30Gi").Restart("40Gi").NodePressure(15).Enforce().ShipTo("/logs")
	cases := map[string]struct {
		policies []*v1alpha1.LayerPolicy
		pods     []PodFigures // all pods of the node; the first is evaluated
		fs       v1alpha1.FilesystemUsage
		want     summary
	}{
		"largest container escalates to offload under its thresholds": {
			policies: policies(pressure),
			pods: []PodFigures{
				makePod("big").Container("app", 10*Gi).Hot("/logs", 8*Gi).Obj(),
				makePod("small").Container("app", 5*Gi).Hot("/logs", 4*Gi).Obj(),
			},
			fs:   short,
			want: over(v1alpha1.StateOffload, "app", "p").reason(v1alpha1.ReasonNodePressure).act(offloadOf("app", "p")),
		},
		"smaller container is spared once the deficit is covered": {
			policies: policies(pressure),
			pods: []PodFigures{
				makePod("small").Container("app", 5*Gi).Hot("/logs", 4*Gi).Obj(),
				makePod("big").Container("app", 10*Gi).Hot("/logs", 8*Gi).Obj(),
			},
			fs:   short,
			want: within("app", "p"),
		},
		"nothing to offload anywhere: the largest restarts": {
			policies: policies(pressure),
			pods: []PodFigures{
				makePod("big").Container("app", 10*Gi).Obj(),
				makePod("small").Container("app", 5*Gi).Obj(),
			},
			fs:   short,
			want: over(v1alpha1.StateRestart, "app", "p").reason(v1alpha1.ReasonNodePressure).act(restartOf("app", "p", true)),
		},
		"free space at the margin: no pressure": {
			policies: policies(pressure),
			pods:     []PodFigures{makePod("big").Container("app", 10*Gi).Hot("/logs", 8*Gi).Obj()},
			fs:       fsUsage(15*Gi, 500_000),
			want:     within("app", "p"),
		},
		"a threshold state above the pressure state keeps its reason": {
			policies: policies(pressure),
			pods:     []PodFigures{makePod("big").Container("app", 45*Gi).Hot("/logs", 40*Gi).Obj()},
			fs:       short,
			want:     over(v1alpha1.StateRestart, "app", "p").act(restartOf("app", "p", true)),
		},
		"Audit: escalated state, no action": {
			policies: policies(makePolicy("p").Warn("20Gi").NodePressure(15).ShipTo("/logs")),
			pods:     []PodFigures{makePod("big").Container("app", 10*Gi).Hot("/logs", 8*Gi).Obj()},
			fs:       short,
			want:     over(v1alpha1.StateOffload, "app", "p").reason(v1alpha1.ReasonNodePressure),
		},
		"inode margin: the container with the most inodes escalates": {
			policies: policies(makePolicy("p").NodePressure(5).InodeMargin(10).Enforce().ShipTo("/logs")),
			pods: []PodFigures{
				makePod("many-files").Container("app", Gi).Inodes(80_000).HotFiles("/logs", Gi/2, 70_000).Obj(),
				makePod("big").Container("app", 10*Gi).Inodes(1_000).Obj(),
			},
			fs:   fsUsage(50*Gi, 50_000),
			want: over(v1alpha1.StateOffload, "app", "p").reason(v1alpha1.ReasonNodePressure).act(offloadOf("app", "p")),
		},
		"same state from a threshold and from pressure: the threshold explains it": {
			policies: policies(makePolicy("a-pressure").NodePressure(15).ShipTo("/logs"), makePolicy("b-threshold").Offload("9Gi")),
			pods:     []PodFigures{makePod("big").Container("app", 10*Gi).Hot("/logs", 8*Gi).Obj()},
			fs:       short,
			want:     over(v1alpha1.StateOffload, "app", "b-threshold").overlaps("a-pressure"),
		},
		"policy without nodePressure does not escalate": {
			policies: policies(makePolicy("p").Warn("20Gi").Enforce().ShipTo("/logs")),
			pods:     []PodFigures{makePod("big").Container("app", 10*Gi).Hot("/logs", 8*Gi).Obj()},
			fs:       short,
			want:     within("app", "p"),
		},
		"overlap: a victim picked for a larger margin is not acted on by a policy whose margin is already covered": {
			policies: policies(
				makePolicy("wide").NodePressure(20).ShipTo("/logs"),             // needs 12Gi
				makePolicy("narrow").NodePressure(10).Enforce().ShipTo("/logs"), // needs 2Gi
			),
			pods: []PodFigures{
				makePod("second").Container("app", 9*Gi).Hot("/logs", 6*Gi).Obj(),
				makePod("first").Container("app", 10*Gi).Hot("/logs", 8*Gi).Obj(),
			},
			fs:   short,
			want: over(v1alpha1.StateOffload, "app", "wide").reason(v1alpha1.ReasonNodePressure).overlaps("narrow"),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var cands []Candidate
			for _, p := range tc.pods {
				cands = append(cands, NodeCandidates(p, tc.policies)...)
			}
			plan := PlanNodePressure([]v1alpha1.FilesystemUsage{tc.fs}, cands, DefaultKubeletThresholds())
			got := Evaluate(Input{Policies: tc.policies, Pod: tc.pods[0], Now: now, NodePressure: plan})
			if d := diffOf(tc.want, summarize(got)); d != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestEvaluateMessage(t *testing.T) {
	airflow := makePolicy("airflow-logs").Warn("3Gi").Offload("4Gi").Enforce().ShipTo("/opt/airflow/logs")
	cases := map[string]struct {
		policies []*v1alpha1.LayerPolicy
		pod      PodFigures
		plan     func(PodFigures, []*v1alpha1.LayerPolicy) *NodePressurePlan
		now      time.Time
		want     string
	}{
		"over offload, with hot path and growth": {
			policies: policies(airflow),
			pod: makePod("airflow-scheduler-7d9f").Container("scheduler", 4617089843).Growth(120*Mi).
				Hot("/opt/airflow/logs", 4187593113+100*Mi).Hot("/opt/airflow/logs/scheduler/2026-11-25", 4187593113).Obj(),
			want: `container "scheduler" of pod "airflow-scheduler-7d9f" uses 4.3Gi of writable layer, over the offload threshold 4Gi (policy "airflow-logs"); largest directory /opt/airflow/logs/scheduler/2026-11-25 (3.9Gi), growing 120Mi/min`,
		},
		"exactly at a threshold": {
			policies: policies(makePolicy("p").Warn("3Gi")),
			pod:      makePod("web").Container("app", 3*Gi).Obj(),
			want:     `container "app" of pod "web" uses 3Gi of writable layer, at the warn threshold 3Gi (policy "p")`,
		},
		"over warn, growing toward restart": {
			policies: policies(makePolicy("p").Warn("3Gi").Restart("6Gi")),
			pod:      makePod("web").Container("app", 4*Gi).Growth(100 * Mi).Obj(),
			want:     `container "app" of pod "web" uses 4Gi of writable layer, over the warn threshold 3Gi (policy "p"); growing 100Mi/min, reaching the restart threshold 6Gi in ~20m`,
		},
		"next threshold of another policy": {
			policies: policies(makePolicy("a").Warn("3Gi"), makePolicy("b").Restart("6Gi")),
			pod:      makePod("web").Container("app", 4*Gi).Growth(100 * Mi).Obj(),
			want:     `container "app" of pod "web" uses 4Gi of writable layer, over the warn threshold 3Gi (policy "a"); growing 100Mi/min, reaching the restart threshold 6Gi of policy "b" in ~20m`,
		},
		"equal next thresholds: the policy named first by name, whatever the input order": {
			policies: policies(makePolicy("b").Warn("3Gi").Restart("6Gi"), makePolicy("a").Restart("6Gi")),
			pod:      makePod("web").Container("app", 4*Gi).Growth(100 * Mi).Obj(),
			want:     `container "app" of pod "web" uses 4Gi of writable layer, over the warn threshold 3Gi (policy "b"); growing 100Mi/min, reaching the restart threshold 6Gi of policy "a" in ~20m`,
		},
		"predicted by leadTime": {
			policies: policies(makePolicy("p").Offload("4Gi").LeadTime(15 * time.Minute)),
			pod:      makePod("web").Container("app", 3*Gi).Growth(100*Mi).Hot("/logs", 2*Gi).Obj(),
			want:     `container "app" of pod "web" uses 3Gi of writable layer and will reach the offload threshold 4Gi in ~10m at 100Mi/min, within the lead time 15m (policy "p"); largest directory /logs (2Gi)`,
		},
		"within limits": {
			policies: policies(makePolicy("p").Warn("3Gi")),
			pod:      makePod("web").Container("app", 1536*Mi).Obj(),
			want:     `container "app" of pod "web" uses 1.5Gi of writable layer, under the warn threshold 3Gi (policy "p")`,
		},
		"within limits, growing slowly": {
			policies: policies(makePolicy("p").Warn("3Gi")),
			pod:      makePod("web").Container("app", 2*Gi).Growth(Mi).Obj(),
			want:     `container "app" of pod "web" uses 2Gi of writable layer, under the warn threshold 3Gi (policy "p"); growing 1Mi/min, reaching the warn threshold 3Gi in ~17h4m`,
		},
		"no threshold": {
			policies: policies(makePolicy("p")),
			pod:      makePod("web").Container("app", 999).Obj(),
			want:     `container "app" of pod "web" uses 999B of writable layer, no threshold set (policy "p")`,
		},
		"more containers over": {
			policies: policies(makePolicy("p").Warn("1Gi").Offload("2Gi")),
			pod:      makePod("web").Container("a", 3*Gi).Container("b", Gi).Container("c", Gi).Container("d", Mi).Obj(),
			want:     `container "a" of pod "web" uses 3Gi of writable layer, over the offload threshold 2Gi (policy "p"); 2 more containers of the pod are over a threshold`,
		},
		"one more container over": {
			policies: policies(makePolicy("p").Warn("1Gi")),
			pod:      makePod("web").Container("a", 3*Gi).Container("b", Gi).Obj(),
			want:     `container "a" of pod "web" uses 3Gi of writable layer, over the warn threshold 1Gi (policy "p"); 1 more container of the pod is over a threshold`,
		},
		"node pressure on bytes": {
			policies: policies(makePolicy("p").NodePressure(15).ShipTo("/logs")),
			pod:      makePod("web").Container("app", 10*Gi).Hot("/logs", 8*Gi).Obj(),
			plan: func(p PodFigures, ps []*v1alpha1.LayerPolicy) *NodePressurePlan {
				return PlanNodePressure([]v1alpha1.FilesystemUsage{fsUsage(8*Gi, 0)}, NodeCandidates(p, ps), DefaultKubeletThresholds())
			},
			want: `container "app" of pod "web" uses 10Gi of writable layer; node filesystem /var/lib/containerd has 8.0% free (8Gi of 100Gi), under the 15% margin of policy "p" (the kubelet evicts under nodefs.available 10%), and it is among the node's largest containers: escalated to offload; largest directory /logs (8Gi)`,
		},
		"node pressure on a separate runtime filesystem, under a quantity threshold": {
			policies: policies(makePolicy("p").NodePressure(15).ShipTo("/logs")),
			pod:      makePod("web").Container("app", 10*Gi).Hot("/logs", 8*Gi).Obj(),
			plan: func(p PodFigures, ps []*v1alpha1.LayerPolicy) *NodePressurePlan {
				fs := fsUsage(8*Gi, 0)
				fs.KubeletFilesystem = v1alpha1.KubeletImagefs
				th := DefaultKubeletThresholds()
				th.ImagefsAvailable = EvictionThreshold{Text: "5Gi", Quantity: 5 * Gi}
				return PlanNodePressure([]v1alpha1.FilesystemUsage{fs}, NodeCandidates(p, ps), th)
			},
			want: `container "app" of pod "web" uses 10Gi of writable layer; node filesystem /var/lib/containerd has 8.0% free (8Gi of 100Gi), under the 15% margin of policy "p" (the kubelet evicts under imagefs.available 5Gi), and it is among the node's largest containers: escalated to offload; largest directory /logs (8Gi)`,
		},
		"node pressure where the kubelet has no threshold": {
			policies: policies(makePolicy("p").NodePressure(15).ShipTo("/logs")),
			pod:      makePod("web").Container("app", 10*Gi).Hot("/logs", 8*Gi).Obj(),
			plan: func(p PodFigures, ps []*v1alpha1.LayerPolicy) *NodePressurePlan {
				return PlanNodePressure([]v1alpha1.FilesystemUsage{fsUsage(8*Gi, 0)}, NodeCandidates(p, ps), KubeletThresholds{})
			},
			want: `container "app" of pod "web" uses 10Gi of writable layer; node filesystem /var/lib/containerd has 8.0% free (8Gi of 100Gi), under the 15% margin of policy "p", and it is among the node's largest containers: escalated to offload; largest directory /logs (8Gi)`,
		},
		"node pressure on inodes": {
			policies: policies(makePolicy("p").NodePressure(5).InodeMargin(10)),
			pod:      makePod("web").Container("app", 10*Gi).Inodes(90_000).Obj(),
			plan: func(p PodFigures, ps []*v1alpha1.LayerPolicy) *NodePressurePlan {
				return PlanNodePressure([]v1alpha1.FilesystemUsage{fsUsage(50*Gi, 50_000)}, NodeCandidates(p, ps), DefaultKubeletThresholds())
			},
			want: `container "app" of pod "web" uses 10Gi of writable layer; node filesystem /var/lib/containerd has 5.0% of its inodes free (50000 of 1000000), under the 10% inode margin of policy "p" (the kubelet evicts under nodefs.inodesFree 5%), and it is among the node's largest containers: escalated to restart`,
		},
		"stale": {
			policies: policies(makePolicy("p").Warn("3Gi")),
			pod:      makePod("web").Container("app", 9*Gi).Obj(),
			now:      t0.Add(42 * time.Minute),
			want:     `figures for pod "web" are stale: node "node-1" last reported 42m ago (stale after 5m); no action is taken on them`,
		},
		"no report": {
			policies: policies(makePolicy("p").Warn("3Gi")),
			pod:      makePod("web").NoReport().Obj(),
			want:     `no figures for pod "web" yet: node "node-1" has not reported a scan`,
		},
		"no node": {
			policies: policies(makePolicy("p").Warn("3Gi")),
			pod:      makePod("web").NoReport().Node("").Obj(),
			want:     `no figures for pod "web" yet: no node report measures it`,
		},
		"no covered container": {
			policies: policies(makePolicy("p").Warn("3Gi").Containers("worker", "app")),
			pod:      makePod("web").Container("sidecar", Gi).Obj(),
			want:     `no figures for pod "web": node "node-1" reports no running container the selecting policies cover (containers app, worker)`,
		},
		"no covered container, no filter": {
			policies: policies(makePolicy("p").Warn("3Gi")),
			pod:      makePod("web").Obj(),
			want:     `no figures for pod "web": node "node-1" reports no running container the selecting policies cover (all containers)`,
		},
		"no policy": {
			pod:  makePod("web").Obj(),
			want: `no LayerPolicy selects pod "web"`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			n := tc.now
			if n.IsZero() {
				n = now
			}
			in := Input{Policies: tc.policies, Pod: tc.pod, Now: n}
			if tc.plan != nil {
				in.NodePressure = tc.plan(tc.pod, tc.policies)
			}
			if d := diffOf(tc.want, Evaluate(in).Message); d != "" {
				t.Errorf("Evaluate().Message mismatch (-want +got):\n%s", d)
			}
		})
	}
}

// TestEvaluateFullDecision checks every field once, for a pod with several containers under
// two policies.
func TestEvaluateFullDecision(t *testing.T) {
	logs := makePolicy("logs").Warn("1Gi").Offload("2Gi").Restart("8Gi").Enforce().ShipTo("/logs").Containers("app")
	audit := makePolicy("audit").Warn("500Mi")
	pod := makePod("web").
		Container("app", 3*Gi).Growth(50*Mi).Hot("/logs", 2*Gi).
		Container("sidecar", 600*Mi).Hot("/tmp", 100*Mi).
		Container("app", 50*Gi).Stopped().
		Obj()
	got := Evaluate(Input{Policies: policies(logs, audit), Pod: pod, Now: now})
	eta := time.Duration(float64(5*Gi) / float64(50*Mi) * float64(time.Minute))
	want := Decision{
		Pod:       "web",
		State:     v1alpha1.StateOffload,
		Status:    metav1.ConditionFalse,
		Reason:    v1alpha1.ReasonOverOffload,
		Message:   `container "app" of pod "web" uses 3Gi of writable layer, over the offload threshold 2Gi (policy "logs"); largest directory /logs (2Gi), growing 50Mi/min, reaching the restart threshold 8Gi in ~1h42m; 1 more container of the pod is over a threshold`,
		Container: "app", Bytes: 3 * Gi, HotPath: "/logs",
		Policy:      "logs",
		Action:      offloadOf("app", "logs"),
		TimeToLimit: &eta,
		Overlapping: []string{"audit"},
		Containers: []ContainerDecision{
			{Name: "app", ContainerID: "web-app", State: v1alpha1.StateOffload, Reason: v1alpha1.ReasonOverOffload, Policy: "logs",
				Bytes: 3 * Gi, HotPath: "/logs", Action: offloadOf("app", "logs"), TimeToLimit: &eta},
			{Name: "sidecar", ContainerID: "web-sidecar", State: v1alpha1.StateWarn, Reason: v1alpha1.ReasonOverWarn, Policy: "audit",
				Bytes: 600 * Mi, HotPath: "/tmp", Action: noAction},
		},
		PolicyStates: []PolicyState{
			{Policy: "logs", State: v1alpha1.StateOffload, Container: "app", Bytes: 3 * Gi, HotPath: "/logs"},
			{Policy: "audit", State: v1alpha1.StateWarn, Container: "app", Bytes: 3 * Gi, HotPath: "/logs"},
		},
	}
	if d := diffOf(want, got); d != "" {
		t.Errorf("Evaluate() mismatch (-want +got):\n%s", d)
	}
}

// TestEvaluateDoesNotModifyInput guards purity: the caller's policies and figures are shared
// with the informer cache.
func TestEvaluateDoesNotModifyInput(t *testing.T) {
	ps := policies(makePolicy("b").Warn("1Gi").Enforce(), makePolicy("a").Offload("2Gi").Enforce().ShipTo("/logs"))
	pod := makePod("web").Container("app", 3*Gi).Hot("/logs", Gi).Hot("/logs/x", Gi).Obj()
	wantPolicies := []*v1alpha1.LayerPolicy{ps[0].DeepCopy(), ps[1].DeepCopy()}
	wantHot := append([]v1alpha1.HotPathUsage(nil), pod.Containers[0].HotPaths...)
	_ = Evaluate(Input{Policies: ps, Pod: pod, Now: now})
	if d := diffOf(wantPolicies, ps); d != "" {
		t.Errorf("Evaluate() modified the policies (-before +after):\n%s", d)
	}
	if d := diffOf(wantHot, pod.Containers[0].HotPaths); d != "" {
		t.Errorf("Evaluate() modified the figures (-before +after):\n%s", d)
	}
}
