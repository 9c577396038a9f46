package enforce

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/remediation"
	"github.com/layerkeeper/layerkeeper/test/builders"
)

const gi = int64(1) << 30

var nsCounter int

// workload is a Deployment, its ReplicaSet and one Running pod on a node.
type workload struct {
	deploy *appsv1.Deployment
	pod    *corev1.Pod
}

func newNamespace(t *testing.T, c client.Client) (ns, node string) {
	nsCounter++
	ns, node = fmt.Sprintf("enforce-%d", nsCounter), fmt.Sprintf("node-e%d", nsCounter)
	must(t, c.Create(ctx(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	return ns, node
}

func newWorkload(t *testing.T, c client.Client, ns, node, name string) *workload {
	t.Helper()
	lbls := map[string]string{"component": "scheduler", "app": name}
	w := &workload{deploy: builders.Deployment(name, ns, lbls, "scheduler")}
	must(t, c.Create(ctx(), w.deploy))
	settle(t, c, w.deploy)
	rs := builders.ReplicaSetFor(w.deploy, "7d9f")
	must(t, c.Create(ctx(), rs))
	w.pod = builders.PodFor(rs, "ReplicaSet", name+"-7d9f-abcde", node, rs.Spec.Template)
	must(t, c.Create(ctx(), w.pod))
	w.pod.Status.Phase = corev1.PodRunning
	must(t, c.Status().Update(ctx(), w.pod))
	return w
}

// rolled holds, per Deployment, the restartedAt of the template whose rollout settle last
// completed.
var rolled sync.Map

// observeDeployments plays the part of the Deployment controller that envtest lacks: a
// change that is not a new template (Deployments bump their generation on annotation
// changes too) is observed at once; a new template stays a rollout in progress until the
// test calls settle.
func observeDeployments(ctx context.Context, c client.Client) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var list appsv1.DeploymentList
		if err := c.List(ctx, &list); err != nil {
			continue
		}
		for i := range list.Items {
			d := &list.Items[i]
			v, ok := rolled.Load(d.Namespace + "/" + d.Name)
			if !ok || d.Status.ObservedGeneration >= d.Generation || v != d.Spec.Template.Annotations[v1alpha1.AnnotationRestartedAt] {
				continue
			}
			d.Status.ObservedGeneration = d.Generation
			_ = c.Status().Update(ctx, d)
		}
	}
}

// settle writes the status the Deployment controller writes once a rollout is complete.
func settle(t *testing.T, c client.Client, d *appsv1.Deployment) {
	t.Helper()
	must(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &appsv1.Deployment{}
		if err := c.Get(ctx(), client.ObjectKeyFromObject(d), cur); err != nil {
			return err
		}
		rolled.Store(cur.Namespace+"/"+cur.Name, cur.Spec.Template.Annotations[v1alpha1.AnnotationRestartedAt])
		n := ptr.Deref(cur.Spec.Replicas, 1)
		cur.Status = appsv1.DeploymentStatus{ObservedGeneration: cur.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
		return c.Status().Update(ctx(), cur)
	}))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeReport(t *testing.T, c client.Client, node string, sizes map[*corev1.Pod]int64) {
	t.Helper()
	b := builders.MakeReport(node, fakeClock.Now(), 100*gi, 60*gi)
	for pod, bytes := range sizes {
		b.Container(pod, "scheduler", bytes, "/opt/airflow/logs")
	}
	r := b.Obj()
	cur := &v1alpha1.NodeLayerReport{}
	if err := c.Get(ctx(), client.ObjectKey{Name: node}, cur); apierrors.IsNotFound(err) {
		cur = &v1alpha1.NodeLayerReport{ObjectMeta: metav1.ObjectMeta{Name: node}}
		must(t, c.Create(ctx(), cur))
	} else {
		must(t, err)
	}
	cur.Status = r.Status
	must(t, c.Status().Update(ctx(), cur))
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last seen: %s", what, last)
}

// never checks that cond stays false for a while.
func never(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			t.Fatalf("%s happened", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func offloads(t *testing.T, c client.Client, ns string) []v1alpha1.LayerOffload {
	var list v1alpha1.LayerOffloadList
	must(t, c.List(ctx(), &list, client.InNamespace(ns)))
	return list.Items
}

// finishOffloads plays the agent: every unfinished offload succeeds.
func finishOffloads(t *testing.T, c client.Client, ns string) int {
	n := 0
	for _, lo := range offloads(t, c, ns) {
		if lo.Status.Phase == v1alpha1.OffloadSucceeded {
			continue
		}
		now := metav1.NewTime(fakeClock.Now())
		lo.Status = v1alpha1.LayerOffloadStatus{Phase: v1alpha1.OffloadSucceeded, Attempts: 1, StartTime: &now, CompletionTime: &now,
			UploadedObjects: 3, UploadedBytes: 3 << 20, DeletedFiles: 3, FreedBytes: 3 << 20,
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionComplete, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonOffloaded,
				Message: "done", LastTransitionTime: now}}}
		must(t, c.Status().Update(ctx(), &lo))
		n++
	}
	return n
}

func restartedAt(t *testing.T, c client.Client, d *appsv1.Deployment) (string, map[string]string) {
	cur := &appsv1.Deployment{}
	must(t, c.Get(ctx(), client.ObjectKeyFromObject(d), cur))
	return cur.Spec.Template.Annotations[v1alpha1.AnnotationRestartedAt], cur.Annotations
}

func events(t *testing.T, c client.Client, ns, reason string) []eventsv1.Event {
	var list eventsv1.EventList
	must(t, c.List(ctx(), &list, client.InNamespace(ns)))
	var out []eventsv1.Event
	for _, ev := range list.Items {
		if ev.Reason == reason {
			out = append(out, ev)
		}
	}
	return out
}

func hasNote(evs []eventsv1.Event, s string) bool {
	for _, ev := range evs {
		if strings.Contains(ev.Note, s) {
			return true
		}
	}
	return false
}

func enforcePolicy(ns string) *builders.LayerPolicyWrapper {
	return builders.MakeLayerPolicy("scheduler-logs", ns).MatchLabels("component", "scheduler").Mode(v1alpha1.ModeEnforce).
		Thresholds("1Gi", "2Gi", "4Gi").HotPath("/opt/airflow/logs", "**/*.log").S3("airflow-logs", "http://127.0.0.1:9000")
}

// TestEnforceOffloadsThenRollsTheDeployment walks the ladder: over offload an offload is
// ordered; over restart every file is shipped first and only then the Deployment is rolled,
// the way `kubectl rollout restart` does it.
func TestEnforceOffloadsThenRollsTheDeployment(t *testing.T) {
	c := requireAPI(t)
	ns, node := newNamespace(t, c)
	w := newWorkload(t, c, ns, node, "airflow-scheduler")
	must(t, c.Create(ctx(), enforcePolicy(ns).Remediation(v1alpha1.ActionRolloutRestart, 30*time.Minute, 1).Obj()))

	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 3 * gi})
	eventually(t, "a threshold LayerOffload", func() (bool, string) {
		los := offloads(t, c, ns)
		return len(los) == 1, fmt.Sprintf("%d offloads", len(los))
	})
	lo := offloads(t, c, ns)[0]
	wantPrefix := fmt.Sprintf("%s/airflow-scheduler/%s/scheduler", ns, w.pod.Name)
	if lo.Spec.Reason != v1alpha1.OffloadReasonThreshold || lo.Spec.NodeName != node || lo.Spec.PodUID != string(w.pod.UID) ||
		lo.Spec.ContainerID != fmt.Sprintf("%s-scheduler", w.pod.UID) || lo.Spec.Target.Prefix != wantPrefix || lo.Spec.IgnoreMinAge ||
		len(lo.Spec.Paths) != 1 || lo.Labels[v1alpha1.LabelPolicy] != "scheduler-logs" {
		t.Errorf("offload spec = %+v labels %v", lo.Spec, lo.Labels)
	}
	// While it runs, no second order for the same container.
	never(t, "a second offload while one runs", 2*time.Second, func() bool { return len(offloads(t, c, ns)) > 1 })
	finishOffloads(t, c, ns)
	eventually(t, "LogsOffloaded event and the policy's lastActions", func() (bool, string) {
		p := &v1alpha1.LayerPolicy{}
		must(t, c.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "scheduler-logs"}, p))
		return len(events(t, c, ns, v1alpha1.EventLogsOffloaded)) == 1 && len(p.Status.LastActions) == 1 &&
			p.Status.LastActions[0].Kind == v1alpha1.ActionKindOffload, fmt.Sprintf("lastActions %+v", p.Status.LastActions)
	})

	// Over restart: first a before-restart offload of everything; no roll until it is done.
	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 5 * gi})
	eventually(t, "a before-restart LayerOffload", func() (bool, string) {
		for _, lo := range offloads(t, c, ns) {
			if lo.Spec.Reason == v1alpha1.OffloadReasonBeforeRestart && lo.Spec.IgnoreMinAge {
				return true, ""
			}
		}
		return false, "none"
	})
	never(t, "a restart before the offload finished", 2*time.Second, func() bool { at, _ := restartedAt(t, c, w.deploy); return at != "" })
	finishOffloads(t, c, ns)
	eventually(t, "the rollout restart", func() (bool, string) {
		at, ann := restartedAt(t, c, w.deploy)
		return at != "" && ann[v1alpha1.AnnotationRemediationCount] == "1" && ann[v1alpha1.AnnotationRemediatedBy] == "scheduler-logs", at
	})
	cur := &appsv1.Deployment{}
	must(t, c.Get(ctx(), client.ObjectKeyFromObject(w.deploy), cur))
	if r := cur.Spec.Template.Annotations[v1alpha1.AnnotationRestartReason]; !strings.Contains(r, "scheduler-logs") || !strings.Contains(r, "5Gi") {
		t.Errorf("restart reason %q does not explain", r)
	}
	if len(events(t, c, ns, v1alpha1.EventRolloutRestarted)) == 0 {
		t.Errorf("no RolloutRestarted event")
	}
}

// TestEnforceCooldownAndBackoff: a workload that keeps coming back over restart is rolled at
// most once per cooldown, and the cooldown doubles for a repeat offender; a rollout under way
// holds the next restart.
func TestEnforceCooldownAndBackoff(t *testing.T) {
	c := requireAPI(t)
	ns, node := newNamespace(t, c)
	w := newWorkload(t, c, ns, node, "airflow-scheduler")
	must(t, c.Create(ctx(), enforcePolicy(ns).Remediation(v1alpha1.ActionRolloutRestart, 30*time.Minute, 1).OffloadBeforeRestart(false).Obj()))
	restarts := func() string { _, ann := restartedAt(t, c, w.deploy); return ann[v1alpha1.AnnotationRemediationCount] }

	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 5 * gi})
	eventually(t, "first restart", func() (bool, string) { return restarts() == "1", restarts() })

	// The roll is under way (the controller has not observed the new template): held.
	fakeClock.Step(31 * time.Minute)
	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 5 * gi})
	eventually(t, "MidRollout skip", func() (bool, string) {
		return hasNote(events(t, c, ns, v1alpha1.EventRemediationSkipped), "MidRollout"), ""
	})
	if restarts() != "1" {
		t.Fatalf("restarted mid-rollout")
	}
	settle(t, c, w.deploy)
	eventually(t, "second restart once the rollout is done", func() (bool, string) { return restarts() == "2", restarts() })
	settle(t, c, w.deploy)

	// Second remediation: the cooldown is now 1h. 31 minutes later: held.
	fakeClock.Step(31 * time.Minute)
	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 5 * gi})
	eventually(t, "Cooldown skip with backoff", func() (bool, string) {
		evs := events(t, c, ns, v1alpha1.EventRemediationSkipped)
		return hasNote(evs, "Cooldown") && hasNote(evs, "backed off after 2 consecutive remediations"), fmt.Sprintf("%d skip events", len(evs))
	})
	never(t, "a restart within the backed-off cooldown", 2*time.Second, func() bool { return restarts() != "2" })
	fakeClock.Step(30 * time.Minute)
	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 5 * gi})
	eventually(t, "third restart after the doubled cooldown", func() (bool, string) { return restarts() == "3", restarts() })
}

// TestEnforceKeepsOffloadingWhileTheRestartIsHeld: a workload over restart whose restart a
// safety limit holds (here the cooldown after its previous roll) keeps having its hot-path
// files shipped, one offload per offload interval: a held restart must not leave the layer to
// grow unchecked until the kubelet evicts the pod.
func TestEnforceKeepsOffloadingWhileTheRestartIsHeld(t *testing.T) {
	c := requireAPI(t)
	ns, node := newNamespace(t, c)
	w := newWorkload(t, c, ns, node, "airflow-scheduler")
	policy := enforcePolicy(ns).Remediation(v1alpha1.ActionRolloutRestart, 30*time.Minute, 1).OffloadBeforeRestart(false).Obj()
	must(t, c.Create(ctx(), policy))
	restarts := func() string { _, ann := restartedAt(t, c, w.deploy); return ann[v1alpha1.AnnotationRemediationCount] }
	threshold := func() int {
		n := 0
		for _, lo := range offloads(t, c, ns) {
			if lo.Spec.Reason == v1alpha1.OffloadReasonThreshold {
				n++
			}
		}
		return n
	}

	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 5 * gi})
	eventually(t, "the first restart", func() (bool, string) { return restarts() == "1", restarts() })
	settle(t, c, w.deploy)

	// Still over restart a minute later: the cooldown holds the restart, the logs are shipped.
	fakeClock.Step(time.Minute)
	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 5 * gi})
	eventually(t, "an offload while the restart is held", func() (bool, string) { return threshold() == 1, fmt.Sprint(threshold()) })
	finishOffloads(t, c, ns)

	// One offload interval later, still growing and still held: the next offload.
	fakeClock.Step(remediation.OffloadInterval(policy) + time.Second)
	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 6 * gi})
	eventually(t, "the next offload an interval later", func() (bool, string) { return threshold() == 2, fmt.Sprint(threshold()) })
	if restarts() != "1" {
		t.Errorf("restarted within the cooldown: remediation count %s", restarts())
	}
}

// TestEnforceOffloadsAgainWithinTheSameMinute: an offload that shipped nothing (every file
// younger than minAge) is followed by the next one an offload interval later, even when both
// fall in the same minute of the clock and the layer's figures do not move.
func TestEnforceOffloadsAgainWithinTheSameMinute(t *testing.T) {
	c := requireAPI(t)
	ns, node := newNamespace(t, c)
	w := newWorkload(t, c, ns, node, "airflow-scheduler")
	policy := enforcePolicy(ns).MinAge(2 * time.Second).Obj()
	must(t, c.Create(ctx(), policy))
	// One second past a minute: the first order at :01, the next at :32.
	fakeClock.Step(time.Minute - time.Duration(fakeClock.Now().Unix()%60)*time.Second + time.Second)
	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 3 * gi})
	eventually(t, "the first offload", func() (bool, string) { n := len(offloads(t, c, ns)); return n == 1, fmt.Sprint(n) })
	finishOffloads(t, c, ns)

	fakeClock.Step(remediation.OffloadInterval(policy) + time.Second)
	if fakeClock.Now().Unix()%60 != 32 {
		t.Fatalf("the clock is at %s, not in the first order's minute", fakeClock.Now().Format("15:04:05"))
	}
	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 3 * gi})
	eventually(t, "the next offload in the same minute", func() (bool, string) { n := len(offloads(t, c, ns)); return n == 2, fmt.Sprint(n) })
}

// TestEnforceMaxConcurrent: two Deployments over restart under a policy with maxConcurrent 1:
// the second waits until the first is available again.
func TestEnforceMaxConcurrent(t *testing.T) {
	c := requireAPI(t)
	ns, node := newNamespace(t, c)
	a := newWorkload(t, c, ns, node, "scheduler-a")
	b := newWorkload(t, c, ns, node, "scheduler-b")
	must(t, c.Create(ctx(), enforcePolicy(ns).Remediation(v1alpha1.ActionRolloutRestart, 30*time.Minute, 1).OffloadBeforeRestart(false).Obj()))
	writeReport(t, c, node, map[*corev1.Pod]int64{a.pod: 5 * gi, b.pod: 6 * gi})
	count := func() (int, *workload) {
		n, first := 0, (*workload)(nil)
		for _, w := range []*workload{a, b} {
			if at, _ := restartedAt(t, c, w.deploy); at != "" {
				n++
				first = w
			}
		}
		return n, first
	}
	eventually(t, "one restart", func() (bool, string) { n, _ := count(); return n == 1, fmt.Sprint(n) })
	eventually(t, "MaxConcurrent skip", func() (bool, string) {
		return hasNote(events(t, c, ns, v1alpha1.EventRemediationSkipped), "MaxConcurrent"), ""
	})
	never(t, "a second restart while the first rolls", 2*time.Second, func() bool { n, _ := count(); return n > 1 })
	_, first := count()
	settle(t, c, first.deploy)
	writeReport(t, c, node, map[*corev1.Pod]int64{a.pod: 5 * gi, b.pod: 6 * gi})
	eventually(t, "the second restart once the first is available", func() (bool, string) { n, _ := count(); return n == 2, fmt.Sprint(n) })
}

// TestEnforceEvictionBlockedByPDB: EvictPod goes through the Eviction API; a
// PodDisruptionBudget that allows no disruption keeps refusing it, and after a bound the
// remediation is reported blocked, never forced.
func TestEnforceEvictionBlockedByPDB(t *testing.T) {
	c := requireAPI(t)
	ns, node := newNamespace(t, c)
	w := newWorkload(t, c, ns, node, "airflow-scheduler")
	must(t, c.Create(ctx(), &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "scheduler", Namespace: ns},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"component": "scheduler"}}}}))
	must(t, c.Create(ctx(), enforcePolicy(ns).Remediation(v1alpha1.ActionEvictPod, 30*time.Minute, 1).OffloadBeforeRestart(false).Obj()))
	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 5 * gi})
	// Refused evictions are retried with backoff: a new report brings a reconcile, but only
	// one past the backoff posts the eviction again.
	eventually(t, "RemediationBlocked after refused evictions", func() (bool, string) {
		if len(events(t, c, ns, v1alpha1.EventRemediationBlocked)) > 0 {
			return true, ""
		}
		fakeClock.Step(remediation.EvictionBackoffMax)
		writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 5 * gi})
		time.Sleep(time.Second)
		return false, ""
	})
	p := &corev1.Pod{}
	must(t, c.Get(ctx(), client.ObjectKeyFromObject(w.pod), p))
	if !p.DeletionTimestamp.IsZero() {
		t.Errorf("the pod was deleted despite its PodDisruptionBudget")
	}
	if !hasNote(events(t, c, ns, v1alpha1.EventRemediationBlocked), "never forcing") {
		t.Errorf("the blocked event does not say it keeps retrying")
	}
}

// TestAuditNeverActs: the same figures under an Audit policy order nothing and roll nothing.
func TestAuditNeverActs(t *testing.T) {
	c := requireAPI(t)
	ns, node := newNamespace(t, c)
	w := newWorkload(t, c, ns, node, "airflow-scheduler")
	must(t, c.Create(ctx(), enforcePolicy(ns).Mode(v1alpha1.ModeAudit).Remediation(v1alpha1.ActionRolloutRestart, time.Minute, 1).Obj()))
	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 5 * gi})
	eventually(t, "the pod's restart state", func() (bool, string) {
		p := &corev1.Pod{}
		must(t, c.Get(ctx(), client.ObjectKeyFromObject(w.pod), p))
		return p.Annotations[v1alpha1.AnnotationState] == string(v1alpha1.StateRestart), p.Annotations[v1alpha1.AnnotationState]
	})
	never(t, "an Audit policy acting", 3*time.Second, func() bool {
		at, _ := restartedAt(t, c, w.deploy)
		return at != "" || len(offloads(t, c, ns)) > 0
	})
}

// TestBucketUnreachableMakesThePolicyNotReady: an offload that failed on the bucket turns the
// policy's Ready condition False with the reason; a later success turns it back.
func TestBucketUnreachableMakesThePolicyNotReady(t *testing.T) {
	c := requireAPI(t)
	ns, node := newNamespace(t, c)
	w := newWorkload(t, c, ns, node, "airflow-scheduler")
	must(t, c.Create(ctx(), enforcePolicy(ns).Obj()))
	writeReport(t, c, node, map[*corev1.Pod]int64{w.pod: 3 * gi})
	eventually(t, "an offload", func() (bool, string) { return len(offloads(t, c, ns)) == 1, "" })
	lo := offloads(t, c, ns)[0]
	now := metav1.NewTime(fakeClock.Now())
	lo.Status = v1alpha1.LayerOffloadStatus{Phase: v1alpha1.OffloadFailed, Attempts: 1, StartTime: &now, CompletionTime: &now,
		Errors: []string{`bucket "airflow-logs" does not exist`},
		Conditions: []metav1.Condition{{Type: v1alpha1.ConditionFailed, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonBucketUnreachable,
			Message: `bucket "airflow-logs" does not exist: NoSuchBucket`, LastTransitionTime: now}}}
	must(t, c.Status().Update(ctx(), &lo))
	ready := func() *metav1.Condition {
		p := &v1alpha1.LayerPolicy{}
		must(t, c.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "scheduler-logs"}, p))
		return meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
	}
	eventually(t, "Ready=False BucketUnreachable", func() (bool, string) {
		r := ready()
		return r != nil && r.Status == metav1.ConditionFalse && r.Reason == v1alpha1.ReasonBucketUnreachable && strings.Contains(r.Message, "does not exist"), fmt.Sprintf("%+v", r)
	})
	if len(events(t, c, ns, v1alpha1.EventOffloadFailed)) == 0 {
		t.Errorf("no OffloadFailed event")
	}
	// The agent's retry succeeds.
	must(t, c.Get(ctx(), client.ObjectKeyFromObject(&lo), &lo))
	later := metav1.NewTime(fakeClock.Now().Add(time.Minute))
	lo.Status.Phase, lo.Status.Attempts, lo.Status.CompletionTime = v1alpha1.OffloadSucceeded, 2, &later
	meta.SetStatusCondition(&lo.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionFailed, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonOffloaded, Message: "ok"})
	must(t, c.Status().Update(ctx(), &lo))
	eventually(t, "Ready=True again", func() (bool, string) {
		r := ready()
		return r != nil && r.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", r)
	})
}

func ctx() context.Context { return context.Background() }
