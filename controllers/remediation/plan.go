package remediation

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
)

const (
	// MinOffloadInterval and MaxOffloadInterval bound the time between two offloads of the
	// same container for the same reason: the smallest minAge of the policy's hot paths,
	// within these bounds (a file has to age before another offload can ship it).
	MinOffloadInterval = 30 * time.Second
	MaxOffloadInterval = 10 * time.Minute
	// defaultMinAge is hotPaths[].minAge when unset (the API default).
	defaultMinAge = 10 * time.Minute
	// MaxOffloadAttempts is how many attempts an agent makes (nodeagent/offload).
	MaxOffloadAttempts = 6
)

// OffloadInterval is the least time between two offloads of a container for the policy.
func OffloadInterval(p *v1alpha1.LayerPolicy) time.Duration {
	d := MaxOffloadInterval
	for _, hp := range p.Spec.HotPaths {
		age := defaultMinAge
		if hp.MinAge != nil {
			age = hp.MinAge.Duration
		}
		d = min(d, age)
	}
	return max(d, MinOffloadInterval)
}

// Finished says whether an offload will not change any more: Succeeded, or Failed for good
// (container gone, or attempts used up).
func Finished(st v1alpha1.LayerOffloadStatus) bool {
	switch st.Phase {
	case v1alpha1.OffloadSucceeded:
		return true
	case v1alpha1.OffloadFailed:
		c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionFailed)
		return st.Attempts >= MaxOffloadAttempts || (c != nil && c.Reason == v1alpha1.ReasonContainerGone)
	}
	return false
}

// OffloadVerdict is what to do about one container's offloads.
type OffloadVerdict struct {
	// Create says to order a new offload now.
	Create bool
	// Pending is the unfinished offload already ordered (nil if none).
	Pending *v1alpha1.LayerOffload
	// Done is, for BeforeRestart, the offload that Succeeded for this container.
	Done *v1alpha1.LayerOffload
	// FailedForGood is, for BeforeRestart, an offload that failed and will not be retried.
	FailedForGood *v1alpha1.LayerOffload
	// Wait is when to look again; zero when a watch will tell.
	Wait time.Duration
}

// NextOffload decides, from the LayerOffloads already ordered for a pod, whether to order one
// for a container now. An unfinished offload for the container is waited for; a threshold (or
// node-pressure) offload is repeated at most every interval after the last one finished; a
// before-restart offload is ordered once per container instance.
func NextOffload(existing []v1alpha1.LayerOffload, containerID string, reason v1alpha1.OffloadReason, interval time.Duration, now time.Time) OffloadVerdict {
	var v OffloadVerdict
	var lastFinished time.Time
	for i := range existing {
		lo := &existing[i]
		if lo.Spec.ContainerID != containerID || !lo.DeletionTimestamp.IsZero() {
			continue
		}
		if !Finished(lo.Status) {
			if v.Pending == nil {
				v.Pending = lo
			}
			continue
		}
		if reason == v1alpha1.OffloadReasonBeforeRestart {
			if lo.Spec.Reason != v1alpha1.OffloadReasonBeforeRestart {
				continue
			}
			if lo.Status.Phase == v1alpha1.OffloadSucceeded {
				v.Done = lo
			} else {
				v.FailedForGood = lo
			}
			continue
		}
		if t := finishedAt(lo); t.After(lastFinished) {
			lastFinished = t
		}
	}
	switch {
	case v.Pending != nil:
		return v
	case reason == v1alpha1.OffloadReasonBeforeRestart:
		v.Create = v.Done == nil && v.FailedForGood == nil
		return v
	case !lastFinished.IsZero() && now.Sub(lastFinished) < interval:
		v.Wait = interval - now.Sub(lastFinished)
		return v
	}
	v.Create = true
	return v
}

func finishedAt(lo *v1alpha1.LayerOffload) time.Time {
	if lo.Status.CompletionTime != nil {
		return lo.Status.CompletionTime.Time
	}
	return lo.CreationTimestamp.Time
}

// offloadNameBucket is the time slot an order's name is unique within: half of
// MinOffloadInterval, so two orders the interval allows never share a name, while a
// reconcile that retries within the slot (the cache had not shown its order yet) gets
// AlreadyExists instead of a duplicate.
const offloadNameBucket = MinOffloadInterval / 2

// OffloadName is a deterministic name for an order: the pod and container names (cut to
// fit) and a hash of what makes the order unique (container, reason, time slot).
func OffloadName(pod, container, containerID string, reason v1alpha1.OffloadReason, now time.Time) string {
	slot := now.Unix() / int64(offloadNameBucket/time.Second)
	sum := sha256.Sum256([]byte(strings.Join([]string{containerID, string(reason), strconv.FormatInt(slot, 10)}, "/")))
	base := strings.ToLower(pod + "-" + container)
	if len(base) > 200 {
		base = base[:200]
	}
	base = strings.Trim(base, "-.")
	return fmt.Sprintf("%s-%s", base, hex.EncodeToString(sum[:5]))
}

// Rollout is the part of a workload's state the safety limits read.
type Rollout struct {
	// MidRollout is true while the workload rolls out a new revision.
	MidRollout bool
	// Unavailable is the number of unavailable replicas.
	Unavailable int32
}

// InProgress says a remediation of the workload is still under way.
func (r Rollout) InProgress() bool { return r.MidRollout || r.Unavailable > 0 }

// DeploymentRollout reads a Deployment's rollout state the way `kubectl rollout status`
// does.
func DeploymentRollout(d *appsv1.Deployment) Rollout {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	mid := st.ObservedGeneration < d.Generation || st.UpdatedReplicas < want || st.Replicas > st.UpdatedReplicas ||
		st.AvailableReplicas < st.UpdatedReplicas
	return Rollout{MidRollout: mid, Unavailable: st.UnavailableReplicas}
}

// StatefulSetRollout reads a StatefulSet's rollout state.
func StatefulSetRollout(s *appsv1.StatefulSet) Rollout {
	want := int32(1)
	if s.Spec.Replicas != nil {
		want = *s.Spec.Replicas
	}
	st := s.Status
	mid := st.ObservedGeneration < s.Generation || st.UpdatedReplicas < want ||
		(st.UpdateRevision != "" && st.CurrentRevision != st.UpdateRevision)
	return Rollout{MidRollout: mid, Unavailable: max(0, want-st.AvailableReplicas)}
}

// DaemonSetRollout reads a DaemonSet's rollout state.
func DaemonSetRollout(d *appsv1.DaemonSet) Rollout {
	st := d.Status
	mid := st.ObservedGeneration < d.Generation || st.UpdatedNumberScheduled < st.DesiredNumberScheduled
	return Rollout{MidRollout: mid, Unavailable: st.NumberUnavailable}
}

// Backoff between refused evictions: EvictionBackoffBase after the first refusal, doubled
// after each further one, at most EvictionBackoffMax.
const (
	EvictionBackoffBase = 10 * time.Second
	EvictionBackoffMax  = 5 * time.Minute
)

// EvictionRetryAfter is how long to wait at now before posting an eviction that was refused
// refusals times, the last at last; zero means post it now.
func EvictionRetryAfter(refusals int, last, now time.Time) time.Duration {
	if refusals <= 0 {
		return 0
	}
	backoff := EvictionBackoffMax
	if refusals <= 6 {
		backoff = min(EvictionBackoffBase<<(refusals-1), EvictionBackoffMax)
	}
	return max(0, last.Add(backoff).Sub(now))
}

// History is a workload's remediation record, kept in its annotations.
type History struct {
	Last  *time.Time
	Count int
	By    string
}

// ReadHistory parses the remediation annotations of a workload; bad values read as none.
func ReadHistory(ann map[string]string) History {
	var h History
	if t, err := time.Parse(time.RFC3339, ann[v1alpha1.AnnotationLastRemediation]); err == nil {
		h.Last = &t
	}
	if n, err := strconv.Atoi(ann[v1alpha1.AnnotationRemediationCount]); err == nil && n > 0 && h.Last != nil {
		h.Count = n
	} else if h.Last != nil {
		h.Count = 1
	}
	h.By = ann[v1alpha1.AnnotationRemediatedBy]
	return h
}

// RepeatCount is the count to give CheckRemediation: the number of consecutive remediations
// of the workload so far, forgiven (0) when the last is old enough.
func RepeatCount(h History, base time.Duration, now time.Time) int {
	if h.Last == nil || h.Count < 1 {
		return 0
	}
	if now.Sub(*h.Last) > 2*evaluation.EffectiveCooldown(base, h.Count) {
		return 0
	}
	return h.Count
}
