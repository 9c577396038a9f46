package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/test/builders"
	"github.com/layerkeeper/layerkeeper/test/cluster"
)

// auditInterval is the agent's scan interval in the Audit test; the latency budget
// is one interval plus 5 s.
const auditInterval = 3 * time.Second

// TestAuditCrossAndDropBack runs a Deployment under an Audit policy on the real cluster and
// makes its writable layer cross thresholds.warn at a moment the test chooses (a 1 MiB burst
// of logs), then drop back (the logs deleted). Crossing up puts the state annotations on the
// pod and the Deployment, turns WritableLayerWithinLimits False on the Deployment and records
// WritableLayerOverLimit events on both; dropping back removes the annotations, turns the
// condition True again and records WritableLayerBackWithinLimits. Audit mode never acts: no
// offload, no restart. The latency of each signal, from the burst (or the clean-up) to the
// test seeing it, is logged against the budget of one scan interval plus 5 s; it is a
// measurement, not an assertion (the waits allow much longer).
func TestAuditCrossAndDropBack(t *testing.T) {
	c := requireCluster(t)
	ctx := context.Background()
	cs := clientFor(t, c)
	ns := newNamespace(t, cs, "audit")
	k := installLayerkeeperWith(t, c, cluster.InstallOptions{AgentInterval: auditInterval})
	budget := auditInterval + 5*time.Second

	policy := builders.MakeLayerPolicy("audit-logs", ns).MatchLabels("tier", "audited").Mode(v1alpha1.ModeAudit).
		Thresholds("512Ki", "", "").Obj()
	if err := k.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	dep := builders.MakeWorkload("scheduler", ns).
		LogWriter("scheduler", "-rate=0", "-burst-bytes=1048576", "-rotate-bytes=262144", "-report=1h").Obj()
	dep.Spec.Template.Labels["tier"] = "audited"
	if err := k.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	pod := waitRolledOut(t, cs, dep, 120*time.Second)[0]
	waitLog(t, cs, pod, "scheduler", "started", 30*time.Second)

	// Before: measured and within limits, nothing on the pod.
	waitFor(t, 60*time.Second, "WritableLayerWithinLimits=True on the Deployment", func() error {
		return deploymentCondition(ctx, k, dep, corev1.ConditionTrue, v1alpha1.ReasonWithinLimits)
	})
	if s := podAnnotation(t, cs, pod, v1alpha1.AnnotationState); s != "" {
		t.Fatalf("pod state annotation %q before the burst", s)
	}

	// Up: a 1 MiB burst crosses warn (512Ki).
	burst := time.Now()
	signalContainer(t, c, pod, "scheduler", syscall.SIGUSR1)
	up := waitSignals(t, burst, 90*time.Second, map[string]func() error{
		"pod annotation state=warn": func() error {
			return annotationIs(podAnnotation(t, cs, pod, v1alpha1.AnnotationState), string(v1alpha1.StateWarn))
		},
		"Deployment annotation state=warn": func() error {
			return annotationIs(deploymentAnnotation(ctx, t, k, dep, v1alpha1.AnnotationState), string(v1alpha1.StateWarn))
		},
		"Deployment condition False OverWarnThreshold": func() error {
			return deploymentCondition(ctx, k, dep, corev1.ConditionFalse, v1alpha1.ReasonOverWarn)
		},
		"WritableLayerOverLimit event on the pod": func() error {
			return hasEvent(t, cs, ns, "Pod", pod.Name, v1alpha1.EventWritableLayerOverLimit)
		},
		"WritableLayerOverLimit event on the Deployment": func() error {
			return hasEvent(t, cs, ns, "Deployment", dep.Name, v1alpha1.EventWritableLayerOverLimit)
		},
	})
	logLatencies(t, "crossing warn", up, budget)
	if hp := podAnnotation(t, cs, pod, v1alpha1.AnnotationHotPath); hp == "" {
		t.Errorf("pod has no %s annotation", v1alpha1.AnnotationHotPath)
	} else {
		t.Logf("pod hot path annotation: %s", hp)
	}

	// Down: the logs deleted, the layer drops back under warn.
	cleaned := time.Now()
	signalContainer(t, c, pod, "scheduler", syscall.SIGUSR2)
	down := waitSignals(t, cleaned, 90*time.Second, map[string]func() error{
		"pod annotations removed": func() error {
			return annotationIs(podAnnotation(t, cs, pod, v1alpha1.AnnotationState), "")
		},
		"Deployment annotations removed": func() error {
			return annotationIs(deploymentAnnotation(ctx, t, k, dep, v1alpha1.AnnotationState), "")
		},
		"Deployment condition True WithinLimits": func() error {
			return deploymentCondition(ctx, k, dep, corev1.ConditionTrue, v1alpha1.ReasonWithinLimits)
		},
		"WritableLayerBackWithinLimits event on the pod": func() error {
			return hasEvent(t, cs, ns, "Pod", pod.Name, v1alpha1.EventWritableLayerBackWithinLimits)
		},
		"WritableLayerBackWithinLimits event on the Deployment": func() error {
			return hasEvent(t, cs, ns, "Deployment", dep.Name, v1alpha1.EventWritableLayerBackWithinLimits)
		},
	})
	logLatencies(t, "dropping back", down, budget)

	// Audit mode only reports: same pod, no offload, no restart, one event per transition.
	if _, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("the pod is gone in Audit mode: %v", err)
	}
	var offloads v1alpha1.LayerOffloadList
	if err := k.List(ctx, &offloads, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(offloads.Items) > 0 {
		t.Errorf("Audit mode created %d offloads", len(offloads.Items))
	}
	if v := deploymentAnnotation(ctx, t, k, dep, v1alpha1.AnnotationLastRemediation); v != "" {
		t.Errorf("Audit mode remediated the Deployment at %s", v)
	}
	for _, kind := range []string{"Pod", "Deployment"} {
		name := pod.Name
		if kind == "Deployment" {
			name = dep.Name
		}
		for _, reason := range []string{v1alpha1.EventWritableLayerOverLimit, v1alpha1.EventWritableLayerBackWithinLimits} {
			for _, ev := range eventsFor(t, cs, ns, kind, name, reason) {
				if n := max(ev.Count, seriesCount(ev)); n > 1 {
					t.Errorf("%s %s: event %s recorded %d times for one transition: %s", kind, name, reason, n, ev.Message)
				}
			}
		}
	}
}

// waitSignals polls every check until each has passed once and returns how long after since
// each was first seen passing.
func waitSignals(t *testing.T, since time.Time, timeout time.Duration, checks map[string]func() error) map[string]time.Duration {
	t.Helper()
	seen := map[string]time.Duration{}
	waitFor(t, timeout, "every signal", func() error {
		var missing []string
		for what, check := range checks {
			if _, ok := seen[what]; ok {
				continue
			}
			if err := check(); err != nil {
				missing = append(missing, fmt.Sprintf("%s: %v", what, err))
				continue
			}
			seen[what] = time.Since(since)
		}
		if len(missing) > 0 {
			return fmt.Errorf("still waiting for %v", missing)
		}
		return nil
	})
	return seen
}

// logLatencies logs each signal's latency and whether the slowest fits the budget.
func logLatencies(t *testing.T, what string, l map[string]time.Duration, budget time.Duration) {
	t.Helper()
	var slowest time.Duration
	for _, s := range slices.Sorted(maps.Keys(l)) {
		d := l[s]
		t.Logf("%s: %-55s after %5.1fs", what, s, d.Seconds())
		slowest = max(slowest, d)
	}
	verdict := "within"
	if slowest > budget {
		verdict = "OVER"
	}
	t.Logf("%s: every signal after %.1fs, %s the budget of %v (scan interval + 5s)", what, slowest.Seconds(), verdict, budget)
}

func podAnnotation(t *testing.T, cs kubernetes.Interface, p corev1.Pod, key string) string {
	t.Helper()
	cur, err := cs.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cur.Annotations[key]
}

func deploymentAnnotation(ctx context.Context, t *testing.T, k client.Client, d *appsv1.Deployment, key string) string {
	t.Helper()
	cur := &appsv1.Deployment{}
	if err := k.Get(ctx, client.ObjectKeyFromObject(d), cur); err != nil {
		t.Fatal(err)
	}
	return cur.Annotations[key]
}

func annotationIs(got, want string) error {
	if got != want {
		return fmt.Errorf("annotation %q, want %q", got, want)
	}
	return nil
}

// deploymentCondition checks the Deployment's WritableLayerWithinLimits condition.
func deploymentCondition(ctx context.Context, k client.Client, d *appsv1.Deployment, status corev1.ConditionStatus, reason string) error {
	cur := &appsv1.Deployment{}
	if err := k.Get(ctx, client.ObjectKeyFromObject(d), cur); err != nil {
		return err
	}
	for _, c := range cur.Status.Conditions {
		if string(c.Type) == v1alpha1.ConditionWritableLayerWithinLimits {
			if c.Status == status && c.Reason == reason {
				return nil
			}
			return fmt.Errorf("condition %s %s: %s", c.Status, c.Reason, c.Message)
		}
	}
	return fmt.Errorf("no %s condition", v1alpha1.ConditionWritableLayerWithinLimits)
}

func hasEvent(t *testing.T, cs kubernetes.Interface, ns, kind, name, reason string) error {
	t.Helper()
	if len(eventsFor(t, cs, ns, kind, name, reason)) == 0 {
		return fmt.Errorf("no %s event on %s %s", reason, kind, name)
	}
	return nil
}

// seriesCount is how many times an event recorded as a series happened.
func seriesCount(ev corev1.Event) int32 {
	if ev.Series != nil {
		return ev.Series.Count
	}
	return 0
}
