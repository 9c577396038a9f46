package audit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/test/builders"
)

const (
	Mi = int64(1) << 20
	Gi = int64(1) << 30
)

var nsCounter int

// env is one test's namespace with a Deployment (through a ReplicaSet) whose one pod runs on
// a node of its own.
type env struct {
	ns, node string
	deploy   *appsv1.Deployment
	pod      *corev1.Pod
}

func newEnv(t *testing.T, c client.Client) *env {
	t.Helper()
	ctx := context.Background()
	nsCounter++
	e := &env{ns: fmt.Sprintf("audit-%d", nsCounter), node: fmt.Sprintf("node-%d", nsCounter)}
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}))
	lbls := map[string]string{"component": "scheduler"}
	e.deploy = builders.Deployment("airflow-scheduler", e.ns, lbls, "scheduler", "sidecar")
	must(t, c.Create(ctx, e.deploy))
	// The Deployment controller's own condition, which ours must never displace.
	e.deploy.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
		Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability.",
		LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	must(t, c.Status().Update(ctx, e.deploy))
	rs := builders.ReplicaSetFor(e.deploy, "7d9f")
	must(t, c.Create(ctx, rs))
	e.pod = builders.PodFor(rs, "ReplicaSet", "airflow-scheduler-7d9f-abcde", e.node, rs.Spec.Template)
	must(t, c.Create(ctx, e.pod))
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeReport creates or replaces the node's report, as the agent does.
func writeReport(t *testing.T, c client.Client, r *v1alpha1.NodeLayerReport) {
	t.Helper()
	ctx := context.Background()
	cur := &v1alpha1.NodeLayerReport{}
	err := c.Get(ctx, client.ObjectKey{Name: r.Name}, cur)
	if apierrors.IsNotFound(err) {
		cur = &v1alpha1.NodeLayerReport{ObjectMeta: metav1.ObjectMeta{Name: r.Name}}
		must(t, c.Create(ctx, cur))
	} else {
		must(t, err)
	}
	cur.Status = r.Status
	must(t, c.Status().Update(ctx, cur))
}

// eventually polls cond until it holds or 30 s pass.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	eventuallyWithin(t, 30*time.Second, what, cond)
}

// eventuallyWithin polls cond until it holds or the bound passes.
func eventuallyWithin(t *testing.T, bound time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(bound)
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

func deployCondition(t *testing.T, c client.Client, e *env) (*appsv1.DeploymentCondition, *appsv1.Deployment) {
	d := &appsv1.Deployment{}
	must(t, c.Get(context.Background(), client.ObjectKeyFromObject(e.deploy), d))
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == v1alpha1.ConditionWritableLayerWithinLimits {
			return &d.Status.Conditions[i], d
		}
	}
	return nil, d
}

func podAnnotations(t *testing.T, c client.Client, e *env) map[string]string {
	p := &corev1.Pod{}
	must(t, c.Get(context.Background(), client.ObjectKeyFromObject(e.pod), p))
	return p.Annotations
}

func hasEvent(t *testing.T, c client.Client, ns, kind, name, reason string) bool {
	var list eventsv1.EventList
	must(t, c.List(context.Background(), &list, client.InNamespace(ns)))
	for _, ev := range list.Items {
		if ev.Regarding.Kind == kind && ev.Regarding.Name == name && ev.Reason == reason {
			return true
		}
	}
	return false
}

func countEvents(t *testing.T, c client.Client, ns, reason string) int {
	var list eventsv1.EventList
	must(t, c.List(context.Background(), &list, client.InNamespace(ns)))
	n := 0
	for _, ev := range list.Items {
		if ev.Reason == reason {
			n++
		}
	}
	return n
}

// TestAuditCrossesWarnBothWays walks a container over warn and back: pod and Deployment
// annotations, the Deployment condition beside the built-in one, events, policy status.
func TestAuditCrossesWarnBothWays(t *testing.T) {
	c := requireAPI(t)
	ctx := context.Background()
	e := newEnv(t, c)
	policy := builders.MakeLayerPolicy("airflow-logs", e.ns).MatchLabels("component", "scheduler").
		Containers("scheduler").Thresholds("1Gi", "4Gi", "8Gi").Obj()
	must(t, c.Create(ctx, policy))

	// No report yet: the condition is Unknown, nothing is annotated.
	eventually(t, "condition Unknown/NoFigures", func() (bool, string) {
		cond, _ := deployCondition(t, c, e)
		if cond == nil {
			return false, "no condition"
		}
		return cond.Status == corev1.ConditionUnknown && cond.Reason == v1alpha1.ReasonNoFigures, fmt.Sprintf("%+v", *cond)
	})

	// Under warn: True.
	writeReport(t, c, builders.MakeReport(e.node, fakeClock.Now(), 100*Gi, 60*Gi).
		Container(e.pod, "scheduler", 512*Mi, "/opt/airflow/logs/scheduler/2026-11-25").
		Container(e.pod, "sidecar", 3*Gi, "/tmp").Obj())
	eventually(t, "condition True", func() (bool, string) {
		cond, _ := deployCondition(t, c, e)
		return cond != nil && cond.Status == corev1.ConditionTrue && cond.Reason == v1alpha1.ReasonWithinLimits, fmt.Sprintf("%+v", cond)
	})
	if a := podAnnotations(t, c, e); a[v1alpha1.AnnotationState] != "" {
		t.Errorf("pod within limits carries %v (the 3Gi sidecar is not covered by spec.containers)", a)
	}

	// Over warn.
	writeReport(t, c, builders.MakeReport(e.node, fakeClock.Now(), 100*Gi, 60*Gi).
		Container(e.pod, "scheduler", 2*Gi, "/opt/airflow/logs/scheduler/2026-11-25").Obj())
	eventually(t, "pod annotations", func() (bool, string) {
		a := podAnnotations(t, c, e)
		return a[v1alpha1.AnnotationState] == "warn" && a[v1alpha1.AnnotationWritableLayerBytes] == fmt.Sprint(2*Gi) &&
			a[v1alpha1.AnnotationHotPath] == "/opt/airflow/logs/scheduler/2026-11-25" && a[v1alpha1.AnnotationPolicy] == "airflow-logs", fmt.Sprint(a)
	})
	eventually(t, "Deployment condition False", func() (bool, string) {
		cond, d := deployCondition(t, c, e)
		if cond == nil {
			return false, "none"
		}
		ok := cond.Status == corev1.ConditionFalse && cond.Reason == v1alpha1.ReasonOverWarn &&
			d.Annotations[v1alpha1.AnnotationState] == "warn"
		return ok, fmt.Sprintf("%+v annotations=%v", *cond, d.Annotations)
	})
	cond, d := deployCondition(t, c, e)
	for _, want := range []string{`"scheduler"`, e.pod.Name, "2Gi", "1Gi", "/opt/airflow/logs/scheduler/2026-11-25"} {
		if !strings.Contains(cond.Message, want) {
			t.Errorf("condition message %q does not name %q", cond.Message, want)
		}
	}
	if len(d.Status.Conditions) != 2 || d.Status.Conditions[0].Type != appsv1.DeploymentAvailable {
		t.Errorf("the built-in Available condition was not kept beside ours: %+v", d.Status.Conditions)
	}
	eventually(t, "events on pod and Deployment", func() (bool, string) {
		return hasEvent(t, c, e.ns, "Pod", e.pod.Name, v1alpha1.EventWritableLayerOverLimit) &&
			hasEvent(t, c, e.ns, "Deployment", e.deploy.Name, v1alpha1.EventWritableLayerOverLimit), ""
	})
	eventually(t, "policy status", func() (bool, string) {
		p := &v1alpha1.LayerPolicy{}
		must(t, c.Get(ctx, client.ObjectKeyFromObject(policy), p))
		ready := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		ok := p.Status.MatchedPods == 1 && p.Status.OverLimitPods == 1 && p.Status.PodsByState.Warn == 1 &&
			len(p.Status.WorstOffenders) == 1 && p.Status.WorstOffenders[0].Bytes == 2*Gi &&
			ready != nil && ready.Status == metav1.ConditionTrue && p.Status.ObservedGeneration == p.Generation
		return ok, fmt.Sprintf("%+v", p.Status)
	})

	// A rescan with the same figures a little later writes nothing new and records no new event.
	overEvents := countEvents(t, c, e.ns, v1alpha1.EventWritableLayerOverLimit)
	writeReport(t, c, builders.MakeReport(e.node, fakeClock.Now(), 100*Gi, 60*Gi).
		Container(e.pod, "scheduler", 2*Gi+Mi, "/opt/airflow/logs/scheduler/2026-11-25").Obj())
	time.Sleep(2 * time.Second) // let the controllers see it; the assertion is on what did not happen
	if n := countEvents(t, c, e.ns, v1alpha1.EventWritableLayerOverLimit); n != overEvents {
		t.Errorf("a rescan in the same state recorded %d new events", n-overEvents)
	}
	if a := podAnnotations(t, c, e); a[v1alpha1.AnnotationWritableLayerBytes] != fmt.Sprint(2*Gi) {
		t.Errorf("a change of 1Mi in 2Gi rewrote the bytes annotation: %v", a)
	}

	// Back under warn: annotations go, the condition turns True, an event says so.
	writeReport(t, c, builders.MakeReport(e.node, fakeClock.Now(), 100*Gi, 60*Gi).
		Container(e.pod, "scheduler", 100*Mi, "/opt/airflow/logs").Obj())
	eventually(t, "annotations removed and condition True", func() (bool, string) {
		a := podAnnotations(t, c, e)
		cond, d := deployCondition(t, c, e)
		_, podHas := a[v1alpha1.AnnotationState]
		_, depHas := d.Annotations[v1alpha1.AnnotationState]
		return !podHas && !depHas && cond != nil && cond.Status == corev1.ConditionTrue, fmt.Sprintf("pod=%v deploy=%v cond=%+v", a, d.Annotations, cond)
	})
	eventually(t, "back-within-limits events", func() (bool, string) {
		return hasEvent(t, c, e.ns, "Pod", e.pod.Name, v1alpha1.EventWritableLayerBackWithinLimits) &&
			hasEvent(t, c, e.ns, "Deployment", e.deploy.Name, v1alpha1.EventWritableLayerBackWithinLimits), ""
	})

	// Policy deletion removes everything of ours and then the policy.
	writeReport(t, c, builders.MakeReport(e.node, fakeClock.Now(), 100*Gi, 60*Gi).
		Container(e.pod, "scheduler", 5*Gi, "/opt/airflow/logs").Obj())
	eventually(t, "over warn again", func() (bool, string) {
		return podAnnotations(t, c, e)[v1alpha1.AnnotationState] == "offload", fmt.Sprint(podAnnotations(t, c, e))
	})
	must(t, c.Delete(ctx, policy))
	eventually(t, "clean-up after policy deletion", func() (bool, string) {
		a := podAnnotations(t, c, e)
		cond, d := deployCondition(t, c, e)
		err := c.Get(ctx, client.ObjectKeyFromObject(policy), &v1alpha1.LayerPolicy{})
		clean := true
		for _, k := range []string{v1alpha1.AnnotationState, v1alpha1.AnnotationWritableLayerBytes, v1alpha1.AnnotationHotPath, v1alpha1.AnnotationPolicy} {
			if _, ok := a[k]; ok {
				clean = false
			}
			if _, ok := d.Annotations[k]; ok {
				clean = false
			}
		}
		return clean && cond == nil && apierrors.IsNotFound(err) && len(d.Status.Conditions) == 1,
			fmt.Sprintf("pod=%v deploy=%v cond=%+v policyErr=%v", a, d.Annotations, cond, err)
	})
}

// TestStaleReportTurnsConditionUnknown: a report older than the bound is not acted on.
func TestStaleReportTurnsConditionUnknown(t *testing.T) {
	c := requireAPI(t)
	ctx := context.Background()
	e := newEnv(t, c)
	policy := builders.MakeLayerPolicy("p", e.ns).Thresholds("1Gi", "", "").Obj()
	must(t, c.Create(ctx, policy))
	writeReport(t, c, builders.MakeReport(e.node, fakeClock.Now().Add(-2*staleAfter), 100*Gi, 60*Gi).
		Container(e.pod, "scheduler", 3*Gi, "/var/log").Obj())
	eventually(t, "condition Unknown/StaleFigures", func() (bool, string) {
		cond, _ := deployCondition(t, c, e)
		return cond != nil && cond.Status == corev1.ConditionUnknown && cond.Reason == v1alpha1.ReasonStaleFigures, fmt.Sprintf("%+v", cond)
	})
	if a := podAnnotations(t, c, e); a[v1alpha1.AnnotationState] != "" {
		t.Errorf("stale figures annotated the pod: %v", a)
	}
}

// TestConflictingPolicies: the most restrictive threshold wins and both policies report the
// overlap.
func TestConflictingPolicies(t *testing.T) {
	c := requireAPI(t)
	ctx := context.Background()
	e := newEnv(t, c)
	loose := builders.MakeLayerPolicy("loose", e.ns).Thresholds("10Gi", "", "").Obj()
	strict := builders.MakeLayerPolicy("strict", e.ns).MatchLabels("component", "scheduler").Thresholds("1Gi", "", "").Obj()
	must(t, c.Create(ctx, loose))
	must(t, c.Create(ctx, strict))
	writeReport(t, c, builders.MakeReport(e.node, fakeClock.Now(), 100*Gi, 60*Gi).
		Container(e.pod, "scheduler", 2*Gi, "/var/log").Obj())
	eventually(t, "strict policy decides", func() (bool, string) {
		a := podAnnotations(t, c, e)
		return a[v1alpha1.AnnotationState] == "warn" && a[v1alpha1.AnnotationPolicy] == "strict", fmt.Sprint(a)
	})
	for _, p := range []*v1alpha1.LayerPolicy{loose, strict} {
		other := map[string]string{"loose": "strict", "strict": "loose"}[p.Name]
		eventually(t, p.Name+" reports the overlap", func() (bool, string) {
			got := &v1alpha1.LayerPolicy{}
			must(t, c.Get(ctx, client.ObjectKeyFromObject(p), got))
			return len(got.Status.OverlappingPolicies) == 1 && got.Status.OverlappingPolicies[0] == other, fmt.Sprintf("%+v", got.Status)
		})
	}
}

// TestPolicyNotReady: a missing credentials Secret and a node-pressure margin under the
// kubelet's threshold are reported on the Ready condition.
func TestPolicyNotReady(t *testing.T) {
	c := requireAPI(t)
	ctx := context.Background()
	e := newEnv(t, c)
	cases := []struct {
		policy *v1alpha1.LayerPolicy
		reason string
	}{
		{builders.MakeLayerPolicy("no-secret", e.ns).HotPath("/var/log").S3("logs", "").CredentialsSecret("missing").Obj(), v1alpha1.ReasonCredentialsSecretNotFound},
		{builders.MakeLayerPolicy("low-margin", e.ns).NodePressure(5).Obj(), v1alpha1.ReasonInvalidNodePressure},
		{builders.MakeLayerPolicy("bad-prefix", e.ns).HotPath("/var/log").S3("logs", "").Obj(), v1alpha1.ReasonInvalidPrefixTemplate},
	}
	cases[2].policy.Spec.Offload.S3.Prefix = "{{.Namespaces}}/x"
	for _, tc := range cases {
		must(t, c.Create(ctx, tc.policy))
		eventually(t, tc.policy.Name+" not Ready", func() (bool, string) {
			got := &v1alpha1.LayerPolicy{}
			must(t, c.Get(ctx, client.ObjectKeyFromObject(tc.policy), got))
			cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
			return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == tc.reason, fmt.Sprintf("%+v", cond)
		})
	}
	// Creating the Secret makes the first one Ready on its next reconcile (a spec change here).
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "missing", Namespace: e.ns},
		Data: map[string][]byte{"AWS_ACCESS_KEY_ID": []byte("id"), "AWS_SECRET_ACCESS_KEY": []byte("secret")}}))
	p := &v1alpha1.LayerPolicy{}
	must(t, c.Get(ctx, client.ObjectKeyFromObject(cases[0].policy), p))
	p.Spec.Thresholds = cases[0].policy.Spec.Thresholds
	p.Spec.Containers = []string{"scheduler"}
	must(t, c.Update(ctx, p))
	eventually(t, "Ready after the Secret appears", func() (bool, string) {
		got := &v1alpha1.LayerPolicy{}
		must(t, c.Get(ctx, client.ObjectKeyFromObject(p), got))
		cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		return cond != nil && cond.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", cond)
	})
}

// TestNodePressureAgainstEachNodesKubelet: a policy's nodePressure margin is checked against
// the kubelet thresholds that the nodes running its pods report, and the Ready condition
// follows a node's thresholds as its report changes (without waiting for the resync).
func TestNodePressureAgainstEachNodesKubelet(t *testing.T) {
	c := requireAPI(t)
	ctx := context.Background()
	e := newEnv(t, c)
	// A second pod of the same workload, on a second node.
	node2 := e.node + "-b"
	pod2 := e.pod.DeepCopy()
	pod2.ObjectMeta = metav1.ObjectMeta{Name: "airflow-scheduler-7d9f-fghij", Namespace: e.ns, Labels: e.pod.Labels, OwnerReferences: e.pod.OwnerReferences}
	pod2.Spec.NodeName = node2
	must(t, c.Create(ctx, pod2))
	t.Cleanup(func() {
		for _, n := range []string{e.node, node2} {
			_ = c.Delete(ctx, &v1alpha1.NodeLayerReport{ObjectMeta: metav1.ObjectMeta{Name: n}})
		}
	})
	report := func(node string) *builders.ReportWrapper {
		return builders.MakeReport(node, fakeClock.Now(), 100*Gi, 60*Gi)
	}
	writeReport(t, c, report(e.node).Obj()) // an older agent: no thresholds, the defaults (10%)
	writeReport(t, c, report(node2).KubeletEviction("10%", "5%").Obj())
	p := builders.MakeLayerPolicy("margin", e.ns).MatchLabels("component", "scheduler").NodePressure(12).Obj()
	must(t, c.Create(ctx, p))
	ready := func(what string, want metav1.ConditionStatus, reason, message string) {
		t.Helper()
		eventually(t, what, func() (bool, string) {
			got := &v1alpha1.LayerPolicy{}
			must(t, c.Get(ctx, client.ObjectKeyFromObject(p), got))
			cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
			return cond != nil && cond.Status == want && cond.Reason == reason && strings.Contains(cond.Message, message), fmt.Sprintf("%+v", cond)
		})
	}
	ready("Ready with a 12% margin over 10% thresholds", metav1.ConditionTrue, v1alpha1.ReasonPolicyReady, "the policy is valid; it selects 2 pods")

	// The second node's kubelet evicts under 15%: there the kubelet would act first.
	writeReport(t, c, report(node2).KubeletEviction("15%", "5%").Obj())
	ready("not Ready once a node reports a higher threshold", metav1.ConditionFalse, v1alpha1.ReasonInvalidNodePressure,
		"spec.nodePressure.minAvailablePercent (12%) must be above the kubelet's eviction threshold, or the kubelet evicts pods before layerkeeper acts; it is not on 1 of the 2 nodes running selected pods: "+node2+" (nodefs.available 15%)")

	// A quantity: 20Gi of the 100Gi filesystem is 20%, over the margin as well.
	writeReport(t, c, report(e.node).KubeletEviction("20Gi", "5%").Obj())
	ready("both nodes named", metav1.ConditionFalse, v1alpha1.ReasonInvalidNodePressure,
		"it is not on 2 of the 2 nodes running selected pods: "+e.node+" (nodefs.available 20Gi, 20.0% of /var/lib/containerd), "+node2+" (nodefs.available 15%)")

	// Both kubelets lowered: Ready again.
	writeReport(t, c, report(e.node).KubeletEviction("5%", "5%").Obj())
	writeReport(t, c, report(node2).KubeletEviction("1Gi", "5%").Obj())
	ready("Ready once the kubelets evict later than the margin", metav1.ConditionTrue, v1alpha1.ReasonPolicyReady, "the policy is valid")
}

// TestStatefulSetCondition: StatefulSets carry the condition too.
func TestStatefulSetCondition(t *testing.T) {
	c := requireAPI(t)
	ctx := context.Background()
	e := newEnv(t, c)
	sts := builders.StatefulSet("worker", e.ns, map[string]string{"app": "worker"}, "worker")
	must(t, c.Create(ctx, sts))
	pod := builders.PodFor(sts, "StatefulSet", "worker-0", e.node, sts.Spec.Template)
	must(t, c.Create(ctx, pod))
	must(t, c.Create(ctx, builders.MakeLayerPolicy("workers", e.ns).MatchLabels("app", "worker").Thresholds("1Gi", "", "").Obj()))
	writeReport(t, c, builders.MakeReport(e.node, fakeClock.Now(), 100*Gi, 60*Gi).Container(pod, "worker", 3*Gi, "/data/tmp").Obj())
	eventually(t, "StatefulSet condition False", func() (bool, string) {
		got := &appsv1.StatefulSet{}
		must(t, c.Get(ctx, client.ObjectKeyFromObject(sts), got))
		for _, cond := range got.Status.Conditions {
			if cond.Type == v1alpha1.ConditionWritableLayerWithinLimits {
				return cond.Status == corev1.ConditionFalse && got.Annotations[v1alpha1.AnnotationState] == "warn", fmt.Sprintf("%+v", cond)
			}
		}
		return false, "no condition"
	})
}
