package remediation

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func lo(id string, reason v1alpha1.OffloadReason, phase v1alpha1.OffloadPhase, finishedAgo time.Duration, attempts int32, failReason string) v1alpha1.LayerOffload {
	o := v1alpha1.LayerOffload{ObjectMeta: metav1.ObjectMeta{Name: id + "-" + string(reason)},
		Spec:   v1alpha1.LayerOffloadSpec{ContainerID: id, Reason: reason},
		Status: v1alpha1.LayerOffloadStatus{Phase: phase, Attempts: attempts}}
	if phase == v1alpha1.OffloadSucceeded || phase == v1alpha1.OffloadFailed {
		t := metav1.NewTime(now.Add(-finishedAgo))
		o.Status.CompletionTime = &t
	}
	if failReason != "" {
		o.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionFailed, Status: metav1.ConditionTrue, Reason: failReason}}
	}
	return o
}

func TestNextOffload(t *testing.T) {
	const th, br = v1alpha1.OffloadReasonThreshold, v1alpha1.OffloadReasonBeforeRestart
	ok, failed, running := v1alpha1.OffloadSucceeded, v1alpha1.OffloadFailed, v1alpha1.OffloadRunning
	cases := map[string]struct {
		existing   []v1alpha1.LayerOffload
		reason     v1alpha1.OffloadReason
		wantCreate bool
		wantWait   time.Duration
		wantDone   bool
		wantFailed bool
		wantPend   bool
	}{
		"first threshold offload":                       {nil, th, true, 0, false, false, false},
		"one running: wait for it":                      {[]v1alpha1.LayerOffload{lo("c1", th, running, 0, 1, "")}, th, false, 0, false, false, true},
		"failed but retrying counts as running":         {[]v1alpha1.LayerOffload{lo("c1", th, failed, time.Minute, 2, v1alpha1.ReasonBucketUnreachable)}, th, false, 0, false, false, true},
		"finished 2m ago, interval 10m":                 {[]v1alpha1.LayerOffload{lo("c1", th, ok, 2*time.Minute, 1, "")}, th, false, 8 * time.Minute, false, false, false},
		"finished 11m ago":                              {[]v1alpha1.LayerOffload{lo("c1", th, ok, 11*time.Minute, 1, "")}, th, true, 0, false, false, false},
		"another container's offload ignored":           {[]v1alpha1.LayerOffload{lo("c2", th, running, 0, 1, "")}, th, true, 0, false, false, false},
		"before restart: first":                         {[]v1alpha1.LayerOffload{lo("c1", th, ok, time.Minute, 1, "")}, br, true, 0, false, false, false},
		"before restart: done":                          {[]v1alpha1.LayerOffload{lo("c1", br, ok, time.Minute, 1, "")}, br, false, 0, true, false, false},
		"before restart: waits for a threshold offload": {[]v1alpha1.LayerOffload{lo("c1", th, running, 0, 1, "")}, br, false, 0, false, false, true},
		"before restart: failed for good":               {[]v1alpha1.LayerOffload{lo("c1", br, failed, time.Minute, MaxOffloadAttempts, v1alpha1.ReasonBucketUnreachable)}, br, false, 0, false, true, false},
		"before restart: container gone":                {[]v1alpha1.LayerOffload{lo("c1", br, failed, time.Minute, 1, v1alpha1.ReasonContainerGone)}, br, false, 0, false, true, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := NextOffload(tc.existing, "c1", tc.reason, 10*time.Minute, now)
			if v.Create != tc.wantCreate || v.Wait != tc.wantWait || (v.Done != nil) != tc.wantDone || (v.FailedForGood != nil) != tc.wantFailed || (v.Pending != nil) != tc.wantPend {
				t.Errorf("NextOffload = create %v wait %s done %v failed %v pending %v; want %v %s %v %v %v", v.Create, v.Wait,
					v.Done != nil, v.FailedForGood != nil, v.Pending != nil, tc.wantCreate, tc.wantWait, tc.wantDone, tc.wantFailed, tc.wantPend)
			}
		})
	}
}

func TestOffloadInterval(t *testing.T) {
	p := func(ages ...time.Duration) *v1alpha1.LayerPolicy {
		pol := &v1alpha1.LayerPolicy{}
		for _, a := range ages {
			pol.Spec.HotPaths = append(pol.Spec.HotPaths, v1alpha1.HotPath{Path: "/x", MinAge: &metav1.Duration{Duration: a}})
		}
		return pol
	}
	for _, tc := range []struct {
		p    *v1alpha1.LayerPolicy
		want time.Duration
	}{
		{p(), MaxOffloadInterval},
		{p(2 * time.Minute), 2 * time.Minute},
		{p(5*time.Minute, time.Minute), time.Minute},
		{p(0), MinOffloadInterval},
		{p(time.Hour), MaxOffloadInterval},
	} {
		if got := OffloadInterval(tc.p); got != tc.want {
			t.Errorf("OffloadInterval = %s, want %s", got, tc.want)
		}
	}
}

func TestOffloadName(t *testing.T) {
	a := OffloadName("web-7d9f", "app", "abc", v1alpha1.OffloadReasonThreshold, now)
	if a != OffloadName("web-7d9f", "app", "abc", v1alpha1.OffloadReasonThreshold, now.Add(10*time.Second)) {
		t.Errorf("a retry a few seconds later gets another name")
	}
	// Two orders MinOffloadInterval apart, wherever they fall in the clock's minute.
	for start := now; start.Before(now.Add(time.Minute)); start = start.Add(time.Second) {
		if OffloadName("web-7d9f", "app", "abc", v1alpha1.OffloadReasonThreshold, start) ==
			OffloadName("web-7d9f", "app", "abc", v1alpha1.OffloadReasonThreshold, start.Add(MinOffloadInterval)) {
			t.Fatalf("orders at %s and %s, MinOffloadInterval apart, share a name", start.Format("15:04:05"), start.Add(MinOffloadInterval).Format("15:04:05"))
		}
	}
	if a == OffloadName("web-7d9f", "app", "abc", v1alpha1.OffloadReasonThreshold, now.Add(time.Minute)) ||
		a == OffloadName("web-7d9f", "app", "abc", v1alpha1.OffloadReasonBeforeRestart, now) ||
		a == OffloadName("web-7d9f", "app", "abd", v1alpha1.OffloadReasonThreshold, now) {
		t.Errorf("distinct orders share a name")
	}
	long := OffloadName(strings.Repeat("p", 250), "c", "id", v1alpha1.OffloadReasonThreshold, now)
	if len(long) > 253 || !strings.HasPrefix(a, "web-7d9f-app-") {
		t.Errorf("names %q / %d chars", a, len(long))
	}
}

func TestDeploymentRollout(t *testing.T) {
	d := func(gen, observed int64, replicas, updated, total, available, unavailable int32) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: gen}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas)},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, UpdatedReplicas: updated, Replicas: total,
				AvailableReplicas: available, UnavailableReplicas: unavailable}}
	}
	cases := map[string]struct {
		d    *appsv1.Deployment
		want Rollout
	}{
		"settled":                {d(2, 2, 2, 2, 2, 2, 0), Rollout{}},
		"spec not yet observed":  {d(3, 2, 2, 2, 2, 2, 0), Rollout{MidRollout: true}},
		"new pods not all up":    {d(2, 2, 2, 1, 3, 2, 1), Rollout{MidRollout: true, Unavailable: 1}},
		"old pods still there":   {d(2, 2, 2, 2, 3, 2, 0), Rollout{MidRollout: true}},
		"updated, not available": {d(2, 2, 2, 2, 2, 1, 1), Rollout{MidRollout: true, Unavailable: 1}},
	}
	for name, tc := range cases {
		if got := DeploymentRollout(tc.d); got != tc.want {
			t.Errorf("%s: DeploymentRollout = %+v, want %+v", name, got, tc.want)
		}
	}
}

func TestHistory(t *testing.T) {
	last := now.Add(-40 * time.Minute)
	ann := map[string]string{v1alpha1.AnnotationLastRemediation: last.Format(time.RFC3339), v1alpha1.AnnotationRemediationCount: "2",
		v1alpha1.AnnotationRemediatedBy: "logs"}
	h := ReadHistory(ann)
	if h.Last == nil || !h.Last.Equal(last) || h.Count != 2 || h.By != "logs" {
		t.Fatalf("ReadHistory = %+v", h)
	}
	// 2nd remediation 40m ago, base 30m: its cooldown is 1h, forgiven after 2h.
	if got := RepeatCount(h, 30*time.Minute, now); got != 2 {
		t.Errorf("RepeatCount = %d, want 2", got)
	}
	if got := RepeatCount(h, 30*time.Minute, now.Add(3*time.Hour)); got != 0 {
		t.Errorf("RepeatCount after 3h = %d, want 0 (forgiven)", got)
	}
	if got := ReadHistory(map[string]string{v1alpha1.AnnotationLastRemediation: "yesterday"}); got.Last != nil || got.Count != 0 {
		t.Errorf("bad time read as %+v", got)
	}
	if got := ReadHistory(map[string]string{v1alpha1.AnnotationLastRemediation: last.Format(time.RFC3339), v1alpha1.AnnotationRemediationCount: "-4"}); got.Count != 1 {
		t.Errorf("bad count read as %d, want 1", got.Count)
	}
}

func TestEvictionRetryAfter(t *testing.T) {
	cases := map[string]struct {
		refusals int
		lastAgo  time.Duration
		want     time.Duration
	}{
		"never refused":                 {0, 0, 0},
		"just refused once":             {1, 0, 10 * time.Second},
		"refused once, 4s ago":          {1, 4 * time.Second, 6 * time.Second},
		"refused once, backoff elapsed": {1, 10 * time.Second, 0},
		"refused once, long ago":        {1, time.Hour, 0},
		"twice":                         {2, 0, 20 * time.Second},
		"three times, 5s ago":           {3, 5 * time.Second, 35 * time.Second},
		"six times: capped":             {6, 0, 5 * time.Minute},
		"a thousand times: capped":      {1000, time.Minute, 4 * time.Minute},
		"clock went back":               {1, -time.Minute, 70 * time.Second},
	}
	for name, tc := range cases {
		if got := EvictionRetryAfter(tc.refusals, now.Add(-tc.lastAgo), now); got != tc.want {
			t.Errorf("%s: EvictionRetryAfter = %v, want %v", name, got, tc.want)
		}
	}
}
