package evaluation

import (
	"math"
	"testing"
	"time"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

func TestEffectiveCooldown(t *testing.T) {
	cases := map[string]struct {
		base   time.Duration
		repeat int
		want   time.Duration
	}{
		"first remediation":          {base: 30 * time.Minute, repeat: 1, want: 30 * time.Minute},
		"repeat below 1 counts as 1": {base: 30 * time.Minute, repeat: 0, want: 30 * time.Minute},
		"second doubles":             {base: 30 * time.Minute, repeat: 2, want: time.Hour},
		"third doubles again":        {base: 30 * time.Minute, repeat: 3, want: 2 * time.Hour},
		"capped at 24h":              {base: 30 * time.Minute, repeat: 7, want: 24 * time.Hour},
		"cap reached exactly":        {base: 3 * time.Hour, repeat: 4, want: 24 * time.Hour},
		"huge repeat does not overflow": {
			base: 30 * time.Minute, repeat: 1000, want: 24 * time.Hour},
		"base above the cap stays": {base: 48 * time.Hour, repeat: 5, want: 48 * time.Hour},
		"doubling a century-long base does not overflow": {
			base: time.Duration(math.MaxInt64/2 + 1), repeat: 2, want: time.Duration(math.MaxInt64/2 + 1)},
		"zero base: no cooldown":     {base: 0, repeat: 5, want: 0},
		"negative base: no cooldown": {base: -time.Minute, repeat: 1, want: 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := EffectiveCooldown(tc.base, tc.repeat); got != tc.want {
				t.Errorf("EffectiveCooldown(%s, %d) = %s, want %s", tc.base, tc.repeat, got, tc.want)
			}
		})
	}
}

func TestEffectiveRemediationAction(t *testing.T) {
	cases := []struct {
		action v1alpha1.RemediationAction
		owner  string
		want   v1alpha1.RemediationAction
	}{
		{"", OwnerDeployment, v1alpha1.ActionRolloutRestart},
		{v1alpha1.ActionRolloutRestart, OwnerDeployment, v1alpha1.ActionRolloutRestart},
		{v1alpha1.ActionRolloutRestart, OwnerStatefulSet, v1alpha1.ActionRolloutRestart},
		{v1alpha1.ActionRolloutRestart, OwnerDaemonSet, v1alpha1.ActionRolloutRestart},
		{v1alpha1.ActionRolloutRestart, "Pod", v1alpha1.ActionEvictPod},
		{v1alpha1.ActionRolloutRestart, "", v1alpha1.ActionEvictPod},
		{v1alpha1.ActionRolloutRestart, "Job", v1alpha1.ActionEvictPod},
		{v1alpha1.ActionRolloutRestart, "ReplicaSet", v1alpha1.ActionEvictPod},
		{"", "Rollout", v1alpha1.ActionEvictPod},
		{v1alpha1.ActionEvictPod, OwnerDeployment, v1alpha1.ActionEvictPod},
		{v1alpha1.ActionNone, OwnerDeployment, v1alpha1.ActionNone},
		{v1alpha1.ActionNone, "Pod", v1alpha1.ActionNone},
	}
	for _, tc := range cases {
		if got := EffectiveRemediationAction(tc.action, tc.owner); got != tc.want {
			t.Errorf("EffectiveRemediationAction(%q, %q) = %q, want %q", tc.action, tc.owner, got, tc.want)
		}
	}
}

func TestCheckRemediation(t *testing.T) {
	enforce := makePolicy("p").Restart("6Gi").Enforce().ShipTo("/logs")
	restartDecision := Decision{Pod: "web-7d9f", State: v1alpha1.StateRestart, Container: "app", Bytes: 7 * Gi,
		Policy: "p", Action: restartOf("app", "p", true)}
	const what = `; container "app" of pod "web-7d9f" uses 7Gi of writable layer (state restart, policy "p")`
	at := func(ago time.Duration) *time.Time { t := now.Add(-ago); return &t }
	// in fills the fields most cases share; mutate returns a changed copy.
	in := func(mutate func(*RemediationInput)) RemediationInput {
		r := RemediationInput{Policy: enforce.Obj(), Decision: restartDecision, Now: now,
			OwnerKind: OwnerDeployment, OwnerName: "web", RepeatCount: 1}
		if mutate != nil {
			mutate(&r)
		}
		return r
	}
	cases := map[string]struct {
		in   RemediationInput
		want RemediationVerdict
	}{
		"allowed: rollout restart after offloading": {
			in: in(nil),
			want: RemediationVerdict{Allowed: true, Action: v1alpha1.ActionRolloutRestart, Offload: true, Cooldown: 30 * time.Minute,
				Message: `allowed: rollout restart of Deployment "web", after shipping the pod's hot-path files` + what},
		},
		"allowed without offload first": {
			in: in(func(r *RemediationInput) { r.Decision.Action.OffloadFirst = false }),
			want: RemediationVerdict{Allowed: true, Action: v1alpha1.ActionRolloutRestart, Cooldown: 30 * time.Minute,
				Message: `allowed: rollout restart of Deployment "web"` + what},
		},
		"bare pod: evicted instead of rolled": {
			in: in(func(r *RemediationInput) { r.OwnerKind, r.OwnerName = "Pod", "web-7d9f" }),
			want: RemediationVerdict{Allowed: true, Action: v1alpha1.ActionEvictPod, Offload: true, Cooldown: 30 * time.Minute,
				Message: `allowed: eviction of pod "web-7d9f", after shipping the pod's hot-path files` + what},
		},
		"EvictPod policy on a Deployment": {
			in: in(func(r *RemediationInput) {
				r.Policy = enforce.DeepCopy()
				r.Policy.Spec.Remediation.Action = v1alpha1.ActionEvictPod
			}),
			want: RemediationVerdict{Allowed: true, Action: v1alpha1.ActionEvictPod, Offload: true, Cooldown: 30 * time.Minute,
				Message: `allowed: eviction of pod "web-7d9f", after shipping the pod's hot-path files` + what},
		},
		"no policy": {
			in:   in(func(r *RemediationInput) { r.Policy = nil }),
			want: RemediationVerdict{SkipReason: SkipNoPolicy, Message: "no LayerPolicy to remediate under"},
		},
		"Audit mode": {
			in: in(func(r *RemediationInput) { r.Policy = makePolicy("p").Restart("6Gi").ShipTo("/logs").Obj() }),
			want: RemediationVerdict{SkipReason: SkipAuditMode, Action: v1alpha1.ActionRolloutRestart, Cooldown: 30 * time.Minute,
				Message: `policy "p" is in Audit mode: Deployment "web" is not restarted` + what},
		},
		"action None: signal only, ship the files instead": {
			in: in(func(r *RemediationInput) {
				r.Policy = enforce.DeepCopy()
				r.Policy.Spec.Remediation.Action = v1alpha1.ActionNone
			}),
			want: RemediationVerdict{SkipReason: SkipActionNone, Action: v1alpha1.ActionNone, Offload: true, Cooldown: 30 * time.Minute,
				Message: `policy "p" has remediation action None: pod "web-7d9f" is signalled, not restarted` + what},
		},
		"no restart due": {
			in: in(func(r *RemediationInput) {
				r.Decision.State, r.Decision.Action = v1alpha1.StateOffload, offloadOf("app", "p")
			}),
			want: RemediationVerdict{SkipReason: SkipNotOverRestart, Action: v1alpha1.ActionRolloutRestart, Cooldown: 30 * time.Minute,
				Message: `no restart is due for Deployment "web" (state offload, action Offload)`},
		},
		"within the default cooldown": {
			in: in(func(r *RemediationInput) { r.LastRemediation = at(10 * time.Minute) }),
			want: RemediationVerdict{SkipReason: SkipCooldown, Action: v1alpha1.ActionRolloutRestart, Offload: true,
				RetryAfter: 20 * time.Minute, Cooldown: 30 * time.Minute,
				Message: `Deployment "web" was remediated 10m ago; cooldown 30m leaves ~20m` + what},
		},
		"exactly one cooldown later: allowed": {
			in: in(func(r *RemediationInput) { r.LastRemediation = at(30 * time.Minute) }),
			want: RemediationVerdict{Allowed: true, Action: v1alpha1.ActionRolloutRestart, Offload: true, Cooldown: 30 * time.Minute,
				Message: `allowed: rollout restart of Deployment "web", after shipping the pod's hot-path files` + what},
		},
		"repeat offender waits exponentially longer": {
			in: in(func(r *RemediationInput) { r.LastRemediation, r.RepeatCount = at(time.Hour), 3 }),
			want: RemediationVerdict{SkipReason: SkipCooldown, Action: v1alpha1.ActionRolloutRestart, Offload: true,
				RetryAfter: time.Hour, Cooldown: 2 * time.Hour,
				Message: `Deployment "web" was remediated 1h ago; cooldown 2h (30m, backed off after 3 consecutive remediations) leaves ~1h` + what},
		},
		"configured cooldown, repeat 0 counts as the first": {
			in: in(func(r *RemediationInput) {
				r.Policy = makePolicy("p").Restart("6Gi").Enforce().ShipTo("/logs").Cooldown(5 * time.Minute).Obj()
				r.LastRemediation, r.RepeatCount = at(30*time.Second), 0
			}),
			want: RemediationVerdict{SkipReason: SkipCooldown, Action: v1alpha1.ActionRolloutRestart, Offload: true,
				RetryAfter: 4*time.Minute + 30*time.Second, Cooldown: 5 * time.Minute,
				Message: `Deployment "web" was remediated 30s ago; cooldown 5m leaves ~5m` + what},
		},
		"zero cooldown: no wait": {
			in: in(func(r *RemediationInput) {
				w := makePolicy("p").Restart("6Gi").Enforce().ShipTo("/logs").Cooldown(0)
				r.Policy, r.LastRemediation = w.Obj(), at(time.Second)
			}),
			want: RemediationVerdict{Allowed: true, Action: v1alpha1.ActionRolloutRestart, Offload: true,
				Message: `allowed: rollout restart of Deployment "web", after shipping the pod's hot-path files` + what},
		},
		"mid-rollout": {
			in: in(func(r *RemediationInput) { r.OwnerMidRollout = true }),
			want: RemediationVerdict{SkipReason: SkipMidRollout, Action: v1alpha1.ActionRolloutRestart, Offload: true,
				RetryAfter: DefaultRetryAfter, Cooldown: 30 * time.Minute,
				Message: `Deployment "web" is rolling out; waiting for the rollout to finish` + what},
		},
		"unavailable replicas": {
			in: in(func(r *RemediationInput) { r.OwnerUnavailableReplicas = 1 }),
			want: RemediationVerdict{SkipReason: SkipUnavailableReplicas, Action: v1alpha1.ActionRolloutRestart, Offload: true,
				RetryAfter: DefaultRetryAfter, Cooldown: 30 * time.Minute,
				Message: `Deployment "web" has 1 unavailable replica(s); waiting until all are available` + what},
		},
		"maxConcurrent (default 1) reached": {
			in: in(func(r *RemediationInput) { r.InProgress = 1 }),
			want: RemediationVerdict{SkipReason: SkipMaxConcurrent, Action: v1alpha1.ActionRolloutRestart, Offload: true,
				RetryAfter: DefaultRetryAfter, Cooldown: 30 * time.Minute,
				Message: `policy "p" already has 1 remediation(s) in progress (maxConcurrent 1)` + what},
		},
		"under a raised maxConcurrent": {
			in: in(func(r *RemediationInput) {
				r.Policy, r.InProgress = makePolicy("p").Restart("6Gi").Enforce().MaxConcurrent(3).Obj(), 2
				r.Decision.Action.OffloadFirst = false
			}),
			want: RemediationVerdict{Allowed: true, Action: v1alpha1.ActionRolloutRestart, Cooldown: 30 * time.Minute,
				Message: `allowed: rollout restart of Deployment "web"` + what},
		},
		"a skip without a bucket ships nothing": {
			in: in(func(r *RemediationInput) {
				r.Policy, r.OwnerMidRollout = makePolicy("p").Restart("6Gi").Enforce().Obj(), true
			}),
			want: RemediationVerdict{SkipReason: SkipMidRollout, Action: v1alpha1.ActionRolloutRestart,
				RetryAfter: DefaultRetryAfter, Cooldown: 30 * time.Minute,
				Message: `Deployment "web" is rolling out; waiting for the rollout to finish` + what},
		},
		"order: cooldown before mid-rollout, unavailable replicas and maxConcurrent": {
			in: in(func(r *RemediationInput) {
				r.LastRemediation, r.OwnerMidRollout, r.OwnerUnavailableReplicas, r.InProgress = at(10*time.Minute), true, 1, 5
			}),
			want: RemediationVerdict{SkipReason: SkipCooldown, Action: v1alpha1.ActionRolloutRestart, Offload: true,
				RetryAfter: 20 * time.Minute, Cooldown: 30 * time.Minute,
				Message: `Deployment "web" was remediated 10m ago; cooldown 30m leaves ~20m` + what},
		},
		"order: mid-rollout before unavailable replicas": {
			in: in(func(r *RemediationInput) { r.OwnerMidRollout, r.OwnerUnavailableReplicas = true, 1 }),
			want: RemediationVerdict{SkipReason: SkipMidRollout, Action: v1alpha1.ActionRolloutRestart, Offload: true,
				RetryAfter: DefaultRetryAfter, Cooldown: 30 * time.Minute,
				Message: `Deployment "web" is rolling out; waiting for the rollout to finish` + what},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if d := diffOf(tc.want, CheckRemediation(tc.in)); d != "" {
				t.Errorf("CheckRemediation() mismatch (-want +got):\n%s", d)
			}
		})
	}
}

// TestEvaluateThenCheckRemediation runs the two functions the way the controller chains them.
func TestEvaluateThenCheckRemediation(t *testing.T) {
	p := makePolicy("logs").Offload("4Gi").Restart("6Gi").Enforce().ShipTo("/logs").Obj()
	d := Evaluate(Input{Policies: []*v1alpha1.LayerPolicy{p}, Pod: makePod("web").Container("app", 7*Gi).Obj(), Now: now})
	v := CheckRemediation(RemediationInput{Policy: p, Decision: d, Now: now, OwnerKind: OwnerStatefulSet, OwnerName: "web"})
	want := RemediationVerdict{Allowed: true, Action: v1alpha1.ActionRolloutRestart, Offload: true, Cooldown: DefaultCooldown,
		Message: `allowed: rollout restart of StatefulSet "web", after shipping the pod's hot-path files; container "app" of pod "web" uses 7Gi of writable layer (state restart, policy "logs")`}
	if diff := diffOf(want, v); diff != "" {
		t.Errorf("CheckRemediation(Evaluate()) mismatch (-want +got):\n%s", diff)
	}
}
