package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
	"github.com/layerkeeper/layerkeeper/controllers/remediation"
	"github.com/layerkeeper/layerkeeper/test/builders"
)

// TestEvictionBlockedByPDB: a log-heavy pod over restart under an EvictPod policy, whose
// PodDisruptionBudget allows no disruption. The Eviction API refuses; layerkeeper surfaces it
// (RemediationBlocked on the pod and the Deployment), keeps retrying and never forces: the pod
// stays. Once the budget is lifted, a retry evicts the pod and the Deployment replaces it.
func TestEvictionBlockedByPDB(t *testing.T) {
	c := requireCluster(t)
	ctx := context.Background()
	cs := clientFor(t, c)
	ns := newNamespace(t, cs, "pdb")
	k := installLayerkeeper(t, c)

	policy := builders.MakeLayerPolicy("evict", ns).MatchLabels("app", "scheduler").Mode(v1alpha1.ModeEnforce).
		Thresholds("512Ki", "", "1Mi").Remediation(v1alpha1.ActionEvictPod, 0, 1).Obj()
	if err := k.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "scheduler", Namespace: ns},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "scheduler"}}}}
	if _, err := cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dep := builders.MakeWorkload("scheduler", ns).
		LogWriter("scheduler", "-rate=131072", "-line-size=256", "-rotate-bytes=65536").Obj()
	if err := k.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	pod := waitRolledOut(t, cs, dep, 120*time.Second)[0]
	waitFor(t, 120*time.Second, "the pod over restart", func() error {
		return annotationIs(podAnnotation(t, cs, pod, v1alpha1.AnnotationState), string(v1alpha1.StateRestart))
	})
	start := time.Now() // about when the first eviction was refused

	// Refused, surfaced, retried: RemediationBlocked on both objects; the pod is still there.
	waitFor(t, 180*time.Second, "RemediationBlocked on the pod and the Deployment", func() error {
		if err := hasEvent(t, cs, ns, "Pod", pod.Name, v1alpha1.EventRemediationBlocked); err != nil {
			return err
		}
		return hasEvent(t, cs, ns, "Deployment", dep.Name, v1alpha1.EventRemediationBlocked)
	})
	blocked := eventsFor(t, cs, ns, "Pod", pod.Name, v1alpha1.EventRemediationBlocked)[0]
	after := time.Since(start)
	t.Logf("%.0fs: RemediationBlocked: %s", after.Seconds(), blocked.Message)
	// The third refusal comes after the backoff (10 s, then 20 s), however often the agent's
	// reports bring the pod back to the controller: not a speed limit, the retry's pacing. The
	// pod's annotation may trail the first refusal by a few seconds.
	if minimum := remediation.EvictionRetryAfter(1, start, start) + remediation.EvictionRetryAfter(2, start, start); after < minimum-5*time.Second {
		t.Errorf("%d refused evictions within %.0fs of the pod crossing restart: the backoff (%v before the third) was not kept",
			remediation.EvictionBlockedAfter, after.Seconds(), minimum)
	}
	if !strings.Contains(blocked.Message, "never forcing") {
		t.Errorf("RemediationBlocked message %q does not say the eviction is retried, not forced", blocked.Message)
	}
	cur, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil || cur.UID != pod.UID || cur.DeletionTimestamp != nil {
		t.Fatalf("the pod was evicted through a PodDisruptionBudget that allows no disruption: %v", err)
	}
	if evs := eventsFor(t, cs, ns, "Pod", pod.Name, v1alpha1.EventPodEvicted); len(evs) > 0 {
		t.Fatalf("PodEvicted recorded while the budget allows no disruption: %s", evs[0].Message)
	}

	// The budget lifted: the next retry goes through.
	if err := cs.PolicyV1().PodDisruptionBudgets(ns).Delete(ctx, pdb.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	lifted := time.Now()
	waitFor(t, 6*time.Minute, "the pod evicted once the budget is lifted", func() error {
		if err := hasEvent(t, cs, ns, "Pod", pod.Name, v1alpha1.EventPodEvicted); err != nil {
			return err
		}
		cur, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && cur.DeletionTimestamp != nil) {
			return nil
		}
		return fmt.Errorf("the pod is still there (%v)", err)
	})
	t.Logf("evicted %.0fs after the budget was lifted (the controller's backoff between retries)", time.Since(lifted).Seconds())
	next := waitRolledOut(t, cs, dep, 120*time.Second)[0]
	if next.UID == pod.UID {
		t.Errorf("the Deployment still runs the evicted pod")
	}
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, dep.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a := d.Annotations[v1alpha1.AnnotationRemediationAction]; a != string(v1alpha1.ActionEvictPod) {
		t.Errorf("Deployment remediation-action annotation %q, want %s", a, v1alpha1.ActionEvictPod)
	}
}

// roll is one rollout of a Deployment as the test saw it: when its template's restartedAt
// changed, and when the rollout was complete again (zero: not yet).
type roll struct {
	start, done time.Time
	restartedAt string
}

// rollWatcher polls Deployments and records their rollouts.
type rollWatcher struct {
	mu    sync.Mutex
	rolls map[string][]roll
}

func watchRolls(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string, names ...string) *rollWatcher {
	w := &rollWatcher{rolls: map[string][]roll{}}
	last := map[string]string{}
	var wg sync.WaitGroup
	wg.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() { cancel(); wg.Wait() })
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			for _, name := range names {
				d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					continue
				}
				now := time.Now()
				at := d.Spec.Template.Annotations[v1alpha1.AnnotationRestartedAt]
				w.mu.Lock()
				if at != last[name] {
					last[name] = at
					if at != "" {
						w.rolls[name] = append(w.rolls[name], roll{start: now, restartedAt: at})
					}
				}
				if rs := w.rolls[name]; len(rs) > 0 && rs[len(rs)-1].done.IsZero() && rolledOut(d) {
					rs[len(rs)-1].done = now
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *rollWatcher) get(name string) []roll {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]roll(nil), w.rolls[name]...)
}

// rolledOut is `kubectl rollout status` done: the controller observed the latest spec, every
// replica is updated and available, no old one left.
func rolledOut(d *appsv1.Deployment) bool {
	want := ptr.Deref(d.Spec.Replicas, 1)
	st := d.Status
	return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.Replicas == want && st.AvailableReplicas == want
}

// TestMaxConcurrentAndCooldown: two log-heavy Deployments over restart under one policy with
// maxConcurrent 1 and a 30 s cooldown. Their rollouts never overlap (the second waits,
// RemediationSkipped MaxConcurrent), each is rolled again only after its cooldown (30 s after
// the first roll, then doubled: 60 s after the second), and both are rolled twice.
func TestMaxConcurrentAndCooldown(t *testing.T) {
	c := requireCluster(t)
	ctx := context.Background()
	cs := clientFor(t, c)
	ns := newNamespace(t, cs, "limits")
	k := installLayerkeeper(t, c)
	const cooldown = 30 * time.Second

	policy := builders.MakeLayerPolicy("limits", ns).MatchLabels("tier", "scheduler").Mode(v1alpha1.ModeEnforce).
		Thresholds("512Ki", "", "1Mi").Remediation(v1alpha1.ActionRolloutRestart, cooldown, 1).Obj()
	if err := k.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	names := []string{"scheduler-a", "scheduler-b"}
	w := watchRolls(ctx, t, cs, ns, names...)
	for _, name := range names {
		d := builders.MakeWorkload(name, ns).LogWriter("scheduler", "-rate=262144", "-line-size=256", "-rotate-bytes=65536").Obj()
		d.Spec.Template.Labels["tier"] = "scheduler"
		if err := k.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	var secondRolls time.Time
	waitFor(t, 5*time.Minute, "two rolls of each Deployment", func() error {
		for _, name := range names {
			rs := w.get(name)
			if len(rs) < 2 || rs[1].done.IsZero() {
				return fmt.Errorf("%s rolled %d times", name, len(rs))
			}
			secondRolls = maxTime(secondRolls, rs[1].start)
		}
		return nil
	})
	// Long enough after the second rolls that a third within the doubled cooldown would show.
	time.Sleep(time.Until(secondRolls.Add(cooldown + 5*time.Second)))

	rolls := map[string][]roll{}
	for _, name := range names {
		rolls[name] = w.get(name)
		for i, r := range rolls[name] {
			t.Logf("%s roll %d: started %5.1fs, rolled out %5.1fs (restartedAt %s)", name, i+1,
				r.start.Sub(start).Seconds(), r.done.Sub(start).Seconds(), r.restartedAt)
		}
	}
	// maxConcurrent 1: a roll never starts while the other Deployment's is under way. The
	// poll is 200ms apart and the controller reads a cache, so 1s of slack.
	const slack = time.Second
	for _, a := range rolls[names[0]] {
		for _, b := range rolls[names[1]] {
			first, second := a, b
			if b.start.Before(a.start) {
				first, second = b, a
			}
			if first.done.IsZero() || second.start.Before(first.done.Add(-slack)) {
				t.Errorf("rollouts overlap: one started at %.1fs while the other, started at %.1fs, was rolled out only at %.1fs",
					second.start.Sub(start).Seconds(), first.start.Sub(start).Seconds(), first.done.Sub(start).Seconds())
			}
		}
	}
	// The cooldown: the n-th roll waits evaluation.EffectiveCooldown(cooldown, n-1) after the
	// one before (30 s, then 60 s). Measured on the controller's own clock, the restartedAt
	// stamps (whole seconds, like the last-remediation annotation the cooldown is counted
	// from), so no slack is needed.
	for _, name := range names {
		rs := rolls[name]
		for i := 1; i < len(rs); i++ {
			want := evaluation.EffectiveCooldown(cooldown, i)
			prev, err1 := time.Parse(time.RFC3339, rs[i-1].restartedAt)
			cur, err2 := time.Parse(time.RFC3339, rs[i].restartedAt)
			if err1 != nil || err2 != nil {
				t.Errorf("%s: restartedAt %q, %q: %v %v", name, rs[i-1].restartedAt, rs[i].restartedAt, err1, err2)
				continue
			}
			if gap := cur.Sub(prev); gap < want {
				t.Errorf("%s rolled again %v after roll %d, inside its cooldown of %v", name, gap, i, want)
			}
		}
	}
	// The limits were what held the rolls back, and said so.
	var held []string
	for _, name := range names {
		for _, ev := range eventsFor(t, cs, ns, "Deployment", name, v1alpha1.EventRemediationSkipped) {
			held = append(held, ev.Action)
		}
	}
	for _, want := range []string{evaluation.SkipMaxConcurrent, evaluation.SkipCooldown} {
		if !slices.Contains(held, want) {
			t.Errorf("no RemediationSkipped %s event on the Deployments (saw %v)", want, held)
		}
	}
	t.Logf("RemediationSkipped actions on the Deployments: %v", held)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
