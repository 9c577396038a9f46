package evaluation

import (
	"fmt"
	"time"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// Remediation defaults and bounds.
const (
	// DefaultCooldown is spec.remediation.cooldown when unset (the API default).
	DefaultCooldown = 30 * time.Minute
	// MaxCooldown caps the exponential backoff of repeat offenders, unless the configured
	// cooldown is itself longer.
	MaxCooldown = 24 * time.Hour
	// DefaultMaxConcurrent is spec.remediation.maxConcurrent when unset (the API default).
	DefaultMaxConcurrent = 1
	// DefaultRetryAfter is when to look again after a skip that depends on other objects
	// (a rollout, unavailable replicas, other remediations); watches usually requeue sooner.
	DefaultRetryAfter = time.Minute
)

// Reasons a due remediation is skipped; each is the prefix of a RemediationSkipped event.
const (
	// SkipNoPolicy: no policy was given.
	SkipNoPolicy = "NoPolicy"
	// SkipAuditMode: the policy is in Audit mode and never acts.
	SkipAuditMode = "AuditMode"
	// SkipActionNone: spec.remediation.action is None (signal only).
	SkipActionNone = "ActionNone"
	// SkipNotOverRestart: the decision asks for no restart.
	SkipNotOverRestart = "NotOverRestart"
	// SkipCooldown: the workload was remediated within its (backed-off) cooldown.
	SkipCooldown = "Cooldown"
	// SkipMidRollout: the owner is rolling out; restarting now would stack rollouts.
	SkipMidRollout = "MidRollout"
	// SkipUnavailableReplicas: the owner already has unavailable replicas.
	SkipUnavailableReplicas = "UnavailableReplicas"
	// SkipMaxConcurrent: the policy already has spec.remediation.maxConcurrent remediations
	// in progress.
	SkipMaxConcurrent = "MaxConcurrent"
)

// Owner kinds that RolloutRestart can roll; any other owner (a bare pod, a Job, a bare
// ReplicaSet, a custom controller) has its pod evicted instead.
const (
	OwnerDeployment  = "Deployment"
	OwnerStatefulSet = "StatefulSet"
	OwnerDaemonSet   = "DaemonSet"
)

// RemediationInput is what CheckRemediation needs: the decision on one pod and the state of
// its workload and of the policy's other remediations.
type RemediationInput struct {
	// Policy is the policy named by Decision.Action.Policy (Decision.Policy when the action
	// is None); its mode and spec.remediation apply.
	Policy *v1alpha1.LayerPolicy
	// Decision is Evaluate's decision on the pod.
	Decision Decision
	// Now is the time of the check.
	Now time.Time
	// InProgress counts the policy's remediations still in progress (a rolled workload until
	// it is available again, an eviction until the pod is gone).
	InProgress int
	// LastRemediation is when this workload was last remediated; nil if never.
	LastRemediation *time.Time
	// RepeatCount is the number of consecutive remediations of this workload, the last one
	// included (the caller resets it once the workload stays under its restart threshold for
	// longer than the effective cooldown).
	RepeatCount int
	// OwnerKind is Deployment, StatefulSet, DaemonSet, or anything else for pods those do
	// not own (Job, ReplicaSet without Deployment, "Pod" or "" for a bare pod).
	OwnerKind string
	// OwnerName is the owner's name (the pod's for a bare pod), for messages.
	OwnerName string
	// OwnerMidRollout is true while the owner rolls out a new revision.
	OwnerMidRollout bool
	// OwnerUnavailableReplicas is the owner's number of unavailable replicas.
	OwnerUnavailableReplicas int32
}

// RemediationVerdict says whether a restart may happen now.
type RemediationVerdict struct {
	// Allowed is true when the remediation may proceed now.
	Allowed bool
	// Action is the effective action: the policy's spec.remediation.action, with
	// RolloutRestart turned into EvictPod for owners that cannot be rolled.
	Action v1alpha1.RemediationAction
	// Offload says to ship the pod's hot-path files now: before the restart when Allowed (the
	// decision's OffloadFirst), or instead of it while a safety limit or action None holds the
	// restart back and the policy can offload.
	Offload bool
	// SkipReason is one of the Skip* constants; empty when Allowed.
	SkipReason string
	// Message says, for people, what happens or why not.
	Message string
	// RetryAfter is when to check again; zero when only a change of policy or figures can
	// change the verdict.
	RetryAfter time.Duration
	// Cooldown is the effective cooldown of the workload (EffectiveCooldown).
	Cooldown time.Duration
}

// EffectiveCooldown is the cooldown after the repeat-th consecutive remediation of a
// workload: base * 2^(repeat-1), so the 1st waits base, the 2nd 2*base, the 3rd 4*base,
// capped at MaxCooldown (or at base when base is longer). repeat below 1 counts as 1; a zero
// base means no cooldown.
func EffectiveCooldown(base time.Duration, repeat int) time.Duration {
	if base <= 0 {
		return 0
	}
	limit := max(MaxCooldown, base)
	d := base
	for i := 1; i < repeat; i++ {
		if d > limit/2 {
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}

// EffectiveRemediationAction is the action taken for an owner kind: RolloutRestart only rolls
// Deployments, StatefulSets and DaemonSets; any other pod is evicted instead. An unset action
// is RolloutRestart (the API default).
func EffectiveRemediationAction(action v1alpha1.RemediationAction, ownerKind string) v1alpha1.RemediationAction {
	if action == "" {
		action = v1alpha1.ActionRolloutRestart
	}
	if action == v1alpha1.ActionRolloutRestart {
		switch ownerKind {
		case OwnerDeployment, OwnerStatefulSet, OwnerDaemonSet:
		default:
			return v1alpha1.ActionEvictPod
		}
	}
	return action
}

// CheckRemediation applies the remediation safety limits to a decision. The checks run in
// this order and the first that holds decides: AuditMode, ActionNone, NotOverRestart (nothing
// is due), then the limits specific to this workload: Cooldown (with exponential backoff, see
// EffectiveCooldown; a remediation exactly one cooldown later is allowed), MidRollout,
// UnavailableReplicas, and last MaxConcurrent, which depends on other workloads.
func CheckRemediation(in RemediationInput) RemediationVerdict {
	p := in.Policy
	if p == nil {
		return RemediationVerdict{SkipReason: SkipNoPolicy, Message: "no LayerPolicy to remediate under"}
	}
	rem := &p.Spec.Remediation
	base := DefaultCooldown
	if rem.Cooldown != nil {
		base = rem.Cooldown.Duration
	}
	v := RemediationVerdict{
		Action:   EffectiveRemediationAction(rem.Action, in.OwnerKind),
		Cooldown: EffectiveCooldown(base, in.RepeatCount),
	}
	target := targetName(in, v.Action)
	what := fmt.Sprintf("container %q of pod %q uses %s of writable layer (state %s, policy %q)",
		in.Decision.Container, in.Decision.Pod, HumanBytes(in.Decision.Bytes), in.Decision.State, p.Name)
	skip := func(reason string, retry time.Duration, offload bool, format string, args ...any) RemediationVerdict {
		v.SkipReason, v.RetryAfter = reason, retry
		v.Offload = offload && canOffload(p)
		v.Message = fmt.Sprintf(format, args...) + "; " + what
		return v
	}
	switch {
	case p.Spec.Mode != v1alpha1.ModeEnforce:
		return skip(SkipAuditMode, 0, false, "policy %q is in Audit mode: %s is not restarted", p.Name, target)
	case rem.Action == v1alpha1.ActionNone:
		return skip(SkipActionNone, 0, true, "policy %q has remediation action None: %s is signalled, not restarted", p.Name, target)
	case in.Decision.Action.Kind != ActionRestart:
		v.SkipReason = SkipNotOverRestart
		v.Message = fmt.Sprintf("no restart is due for %s (state %s, action %s)", target, in.Decision.State, in.Decision.Action.Kind)
		return v
	}
	if in.LastRemediation != nil {
		if since := in.Now.Sub(*in.LastRemediation); since < v.Cooldown {
			backoff := ""
			if v.Cooldown != base {
				backoff = fmt.Sprintf(" (%s, backed off after %d consecutive remediations)", compactDuration(base), in.RepeatCount)
			}
			return skip(SkipCooldown, v.Cooldown-since, true, "%s was remediated %s ago; cooldown %s%s leaves %s",
				target, ageString(since), compactDuration(v.Cooldown), backoff, approxDuration(v.Cooldown-since))
		}
	}
	if in.OwnerMidRollout {
		return skip(SkipMidRollout, DefaultRetryAfter, true, "%s is rolling out; waiting for the rollout to finish", target)
	}
	if in.OwnerUnavailableReplicas > 0 {
		return skip(SkipUnavailableReplicas, DefaultRetryAfter, true, "%s has %d unavailable replica(s); waiting until all are available",
			target, in.OwnerUnavailableReplicas)
	}
	maxConcurrent := int(rem.MaxConcurrent)
	if maxConcurrent <= 0 {
		maxConcurrent = DefaultMaxConcurrent
	}
	if in.InProgress >= maxConcurrent {
		return skip(SkipMaxConcurrent, DefaultRetryAfter, true, "policy %q already has %d remediation(s) in progress (maxConcurrent %d)",
			p.Name, in.InProgress, maxConcurrent)
	}
	v.Allowed = true
	v.Offload = in.Decision.Action.OffloadFirst
	verb := "rollout restart of"
	if v.Action == v1alpha1.ActionEvictPod {
		verb = "eviction of"
	}
	first := ""
	if v.Offload {
		first = ", after shipping the pod's hot-path files"
	}
	v.Message = fmt.Sprintf("allowed: %s %s%s; %s", verb, target, first, what)
	return v
}

// targetName names what the action touches: the owner for a rollout, the pod for an eviction.
func targetName(in RemediationInput, action v1alpha1.RemediationAction) string {
	if action == v1alpha1.ActionRolloutRestart && in.OwnerName != "" {
		return fmt.Sprintf("%s %q", in.OwnerKind, in.OwnerName)
	}
	return fmt.Sprintf("pod %q", in.Decision.Pod)
}
