package remediation

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
	"github.com/layerkeeper/layerkeeper/controllers/gather"
	"github.com/layerkeeper/layerkeeper/controllers/layerpolicy"
	"github.com/layerkeeper/layerkeeper/controllers/workloadstatus"
)

// +kubebuilder:rbac:groups=layerkeeper.dev,resources=layeroffloads,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch;patch

const (
	// EvictionBlockedAfter is the number of refused evictions (a PodDisruptionBudget
	// answering 429) after which the remediation is reported blocked; it is still retried.
	EvictionBlockedAfter = 3
	// inFlightFor is how long an action this process took counts against maxConcurrent even
	// if the cache does not show it yet.
	inFlightFor = time.Minute
	// heldRestartRetry is when to look again at a restart held because its offload failed.
	heldRestartRetry = 5 * time.Minute
)

// Reconciler acts on pods under Enforce policies.
type Reconciler struct {
	Client   client.Client
	Gatherer *gather.Gatherer
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Evict posts an Eviction (NewEvictor); it must return a 429 as it is, not retry it.
	Evict func(ctx context.Context, ev *policyv1.Eviction) error

	mu        sync.Mutex
	inFlight  map[string]map[string]time.Time   // policy namespace/name -> target -> when acted
	lastSkip  map[types.NamespacedName]string   // pod -> last skip reason reported
	evictions map[types.NamespacedName]refusals // pod -> its refused evictions so far
	// remediatedAt is when a pod's workload was remediated (its skips are not reported
	// for quietAfterRemediation).
	remediatedAt map[types.NamespacedName]time.Time
}

// Reconcile evaluates one pod and carries out what its Enforce policy asks for now.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		if apierrors.IsNotFound(err) {
			r.mu.Lock()
			delete(r.lastSkip, req.NamespacedName)
			delete(r.evictions, req.NamespacedName)
			delete(r.remediatedAt, req.NamespacedName)
			r.mu.Unlock()
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !pod.DeletionTimestamp.IsZero() || pod.Spec.NodeName == "" || pod.Status.Phase != corev1.PodRunning || !r.enforcing(ctx, pod.Namespace) {
		return ctrl.Result{}, nil
	}
	res, err := r.Gatherer.Evaluate(ctx, pod)
	if err != nil || !res.Covered() {
		return ctrl.Result{}, err
	}
	d := res.Decision
	ctrl.LoggerFrom(ctx).V(1).Info("evaluated", "state", d.State, "action", d.Action.Kind, "policy", d.Action.Policy, "reason", d.Reason)
	policy := policyNamed(res.Policies, d.Action.Policy)
	if d.Action.Kind == evaluation.ActionNone || policy == nil {
		r.clearSkip(client.ObjectKeyFromObject(pod))
		return ctrl.Result{}, nil
	}
	if d.Action.Kind == evaluation.ActionOffload {
		r.clearSkip(client.ObjectKeyFromObject(pod))
		v, err := r.ensureOffloads(ctx, pod, policy, d, offloadReason(d), false)
		return ctrl.Result{RequeueAfter: v.wait}, err
	}
	return r.restart(ctx, pod, policy, d)
}

func policyNamed(ps []*v1alpha1.LayerPolicy, name string) *v1alpha1.LayerPolicy {
	for _, p := range ps {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func offloadReason(d evaluation.Decision) v1alpha1.OffloadReason {
	if d.Reason == v1alpha1.ReasonNodePressure {
		return v1alpha1.OffloadReasonNodePressure
	}
	return v1alpha1.OffloadReasonThreshold
}

// offloadsState sums up the offloads of a pod's containers.
type offloadsState struct {
	allDone bool
	failed  *v1alpha1.LayerOffload
	wait    time.Duration
}

// ensureOffloads orders, for each container of the pod the action concerns, the offload
// NextOffload calls for: before a restart every container the policy covers; otherwise the
// ones over offload, and the ones over restart whose restart a safety limit (cooldown, a
// rollout under way, maxConcurrent, action None) holds back, so that a held restart does
// not leave the layer growing unchecked.
func (r *Reconciler) ensureOffloads(ctx context.Context, pod *corev1.Pod, p *v1alpha1.LayerPolicy, d evaluation.Decision,
	reason v1alpha1.OffloadReason, beforeRestart bool) (offloadsState, error) {
	st := offloadsState{allDone: true}
	if p.Spec.Offload == nil || p.Spec.Offload.S3 == nil || len(p.Spec.HotPaths) == 0 {
		return st, nil
	}
	var list v1alpha1.LayerOffloadList
	if err := r.Client.List(ctx, &list, client.InNamespace(pod.Namespace), client.MatchingLabels{v1alpha1.LabelPodUID: string(pod.UID)}); err != nil {
		return st, fmt.Errorf("listing LayerOffloads of pod %s: %w", pod.Name, err)
	}
	now := r.Clock.Now()
	for _, c := range d.Containers {
		due := c.Action.Kind == evaluation.ActionOffload || c.Action.Kind == evaluation.ActionRestart
		if c.ContainerID == "" || (!beforeRestart && !due) || (beforeRestart && c.Policy != p.Name && c.Action.Policy != p.Name) {
			continue
		}
		id := c.ContainerID
		if _, after, ok := strings.Cut(id, "://"); ok {
			id = after
		}
		v := NextOffload(list.Items, id, reason, OffloadInterval(p), now)
		if v.FailedForGood != nil {
			st.failed = v.FailedForGood
		}
		if v.Done == nil {
			st.allDone = false
		}
		if v.Wait > 0 && (st.wait == 0 || v.Wait < st.wait) {
			st.wait = v.Wait
		}
		if !v.Create {
			continue
		}
		lo, err := r.offloadFor(ctx, pod, p, c.Name, id, reason, now)
		if err != nil {
			return st, err
		}
		if err := r.Client.Create(ctx, lo); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// Ordered by an earlier pass the cache did not show yet: look again soon,
				// so that a name taken for any other reason cannot stall the next order.
				st.allDone = false
				if st.wait == 0 || alreadyOrderedRetry < st.wait {
					st.wait = alreadyOrderedRetry
				}
				continue
			}
			return st, fmt.Errorf("creating LayerOffload for %s/%s: %w", pod.Name, c.Name, err)
		}
		r.Recorder.Eventf(pod, lo, corev1.EventTypeNormal, "OffloadOrdered", "Offload",
			"ordered LayerOffload %s of container %q's hot paths to s3://%s/%s (%s)", lo.Name, c.Name, lo.Spec.Target.Bucket, lo.Spec.Target.Prefix, reason)
	}
	return st, nil
}

func (r *Reconciler) offloadFor(ctx context.Context, pod *corev1.Pod, p *v1alpha1.LayerPolicy, container, id string,
	reason v1alpha1.OffloadReason, now time.Time) (*v1alpha1.LayerOffload, error) {
	kind, owner := workloadstatus.Owner(ctx, r.Client, pod)
	target := *p.Spec.Offload.S3
	prefix, err := layerpolicy.RenderPrefix(target.Prefix, layerpolicy.PrefixData{Namespace: pod.Namespace, Owner: owner, OwnerKind: kind,
		Pod: pod.Name, PodUID: string(pod.UID), Container: container, Node: pod.Spec.NodeName, Policy: p.Name})
	if err != nil {
		return nil, err
	}
	target.Prefix = prefix
	paths := p.Spec.HotPaths
	if len(paths) > 16 {
		paths = paths[:16]
	}
	lo := &v1alpha1.LayerOffload{
		ObjectMeta: metav1.ObjectMeta{
			Name: OffloadName(pod.Name, container, id, reason, now), Namespace: pod.Namespace,
			Labels: map[string]string{v1alpha1.LabelPolicy: p.Name, v1alpha1.LabelPodUID: string(pod.UID)},
		},
		Spec: v1alpha1.LayerOffloadSpec{
			PolicyName: p.Name, NodeName: pod.Spec.NodeName, PodName: pod.Name, PodUID: string(pod.UID),
			ContainerName: container, ContainerID: id, Reason: reason, Paths: paths,
			IgnoreMinAge: reason == v1alpha1.OffloadReasonBeforeRestart, Target: target,
		},
	}
	if err := controllerutil.SetOwnerReference(p, lo, r.Client.Scheme()); err != nil {
		return nil, err
	}
	return lo, nil
}

// restart applies the safety limits to a restart the decision asks for, ships the pod's
// files first when asked, and rolls the owner or evicts the pod.
func (r *Reconciler) restart(ctx context.Context, pod *corev1.Pod, p *v1alpha1.LayerPolicy, d evaluation.Decision) (ctrl.Result, error) {
	now := r.Clock.Now()
	kind, ownerName := workloadstatus.Owner(ctx, r.Client, pod)
	owner, rollout, err := r.owner(ctx, pod.Namespace, kind, ownerName)
	if err != nil {
		return ctrl.Result{}, err
	}
	var hist History
	if owner != nil {
		hist = ReadHistory(owner.GetAnnotations())
	}
	// A remediation this process made that the cache does not show yet counts: without it a
	// reconcile racing the cache would restart the same workload twice.
	if at, ok := r.actedOn(p, kind+"/"+ownerName); ok && (hist.Last == nil || hist.Last.Before(at.Truncate(time.Second))) {
		hist = History{Last: &at, Count: hist.Count + 1, By: p.Name}
	}
	base := evaluation.DefaultCooldown
	if p.Spec.Remediation.Cooldown != nil {
		base = p.Spec.Remediation.Cooldown.Duration
	}
	repeat := RepeatCount(hist, base, now)
	inProgress, err := r.inProgress(ctx, p, kind+"/"+ownerName)
	if err != nil {
		return ctrl.Result{}, err
	}
	in := evaluation.RemediationInput{Policy: p, Decision: d, Now: now, InProgress: inProgress, RepeatCount: repeat,
		OwnerKind: kind, OwnerName: ownerName, OwnerMidRollout: rollout.MidRollout, OwnerUnavailableReplicas: rollout.Unavailable}
	if repeat > 0 {
		in.LastRemediation = hist.Last
	}
	v := evaluation.CheckRemediation(in)
	ctrl.LoggerFrom(ctx).V(1).Info("remediation verdict", "allowed", v.Allowed, "skip", v.SkipReason, "offload", v.Offload, "message", v.Message)
	if !v.Allowed {
		r.skip(pod, p, owner, v.SkipReason, v.Message)
		var st offloadsState
		if v.Offload {
			if st, err = r.ensureOffloads(ctx, pod, p, d, offloadReason(d), false); err != nil {
				return ctrl.Result{}, err
			}
		}
		return ctrl.Result{RequeueAfter: minPositive(v.RetryAfter, st.wait)}, nil
	}
	if v.Offload {
		st, err := r.ensureOffloads(ctx, pod, p, d, v1alpha1.OffloadReasonBeforeRestart, true)
		if err != nil {
			return ctrl.Result{}, err
		}
		if st.failed != nil {
			r.skip(pod, p, owner, "OffloadFailed", fmt.Sprintf("the offload before the restart (LayerOffload %s) failed: %s; the restart is held so the logs are not lost",
				st.failed.Name, firstError(st.failed)))
			return ctrl.Result{RequeueAfter: heldRestartRetry}, nil
		}
		if !st.allDone {
			return ctrl.Result{}, nil // the LayerOffload's status change brings us back
		}
	}
	r.clearSkip(client.ObjectKeyFromObject(pod))
	switch v.Action {
	case v1alpha1.ActionRolloutRestart:
		return ctrl.Result{}, r.rolloutRestart(ctx, pod, p, owner, kind, ownerName, repeat+1, v.Message, now)
	case v1alpha1.ActionEvictPod:
		return r.evict(ctx, pod, p, owner, repeat+1, v.Message, now)
	}
	return ctrl.Result{}, nil
}

func firstError(lo *v1alpha1.LayerOffload) string {
	if len(lo.Status.Errors) > 0 {
		return lo.Status.Errors[0]
	}
	return string(lo.Status.Phase)
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 {
		return b
	}
	if b <= 0 {
		return a
	}
	return min(a, b)
}

// owner reads the pod's owning workload when it is one that can be rolled.
func (r *Reconciler) owner(ctx context.Context, ns, kind, name string) (client.Object, Rollout, error) {
	var obj client.Object
	switch kind {
	case evaluation.OwnerDeployment:
		obj = &appsv1.Deployment{}
	case evaluation.OwnerStatefulSet:
		obj = &appsv1.StatefulSet{}
	case evaluation.OwnerDaemonSet:
		obj = &appsv1.DaemonSet{}
	default:
		return nil, Rollout{}, nil
	}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		return nil, Rollout{}, client.IgnoreNotFound(err)
	}
	return obj, rolloutOf(obj), nil
}

func rolloutOf(obj client.Object) Rollout {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return DeploymentRollout(o)
	case *appsv1.StatefulSet:
		return StatefulSetRollout(o)
	case *appsv1.DaemonSet:
		return DaemonSetRollout(o)
	}
	return Rollout{}
}

// inProgress counts the policy's remediations under way, target excepted: workloads it
// remediated within the last hour that are not available again, pods it evicted that still
// exist, and actions this process took that the cache may not show yet.
func (r *Reconciler) inProgress(ctx context.Context, p *v1alpha1.LayerPolicy, except string) (int, error) {
	now := r.Clock.Now()
	seen := map[string]bool{}
	// cached says the cache already shows a target's remediation (so its own state decides).
	cached := map[string]time.Time{}
	lists := map[string]client.ObjectList{
		evaluation.OwnerDeployment: &appsv1.DeploymentList{}, evaluation.OwnerStatefulSet: &appsv1.StatefulSetList{},
		evaluation.OwnerDaemonSet: &appsv1.DaemonSetList{},
	}
	for kind, list := range lists {
		if err := r.Client.List(ctx, list, client.InNamespace(p.Namespace)); err != nil {
			return 0, fmt.Errorf("listing %ss: %w", kind, err)
		}
		var objs []client.Object
		switch l := list.(type) {
		case *appsv1.DeploymentList:
			for i := range l.Items {
				objs = append(objs, &l.Items[i])
			}
		case *appsv1.StatefulSetList:
			for i := range l.Items {
				objs = append(objs, &l.Items[i])
			}
		case *appsv1.DaemonSetList:
			for i := range l.Items {
				objs = append(objs, &l.Items[i])
			}
		}
		for _, o := range objs {
			h := ReadHistory(o.GetAnnotations())
			if h.By != p.Name || h.Last == nil || now.Sub(*h.Last) > time.Hour {
				continue
			}
			cached[kind+"/"+o.GetName()] = *h.Last
			if rolloutOf(o).InProgress() {
				seen[kind+"/"+o.GetName()] = true
			}
		}
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(p.Namespace)); err != nil {
		return 0, fmt.Errorf("listing pods: %w", err)
	}
	podExists := map[string]bool{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		podExists["Pod/"+pod.Name] = pod.DeletionTimestamp.IsZero()
		if pod.Annotations[v1alpha1.AnnotationRemediatedBy] == p.Name && !pod.DeletionTimestamp.IsZero() {
			seen["Pod/"+pod.Name] = true
		}
	}
	r.mu.Lock()
	for target, at := range r.inFlight[p.Namespace+"/"+p.Name] {
		if last, ok := cached[target]; ok && !last.Before(at.Truncate(time.Second)) {
			continue // the cache shows it: its rollout state counted above
		}
		if strings.HasPrefix(target, "Pod/") && !podExists[target] {
			continue // the cache shows the eviction (the pod terminating or gone)
		}
		if now.Sub(at) < inFlightFor {
			seen[target] = true
		}
	}
	r.mu.Unlock()
	delete(seen, except)
	return len(seen), nil
}

// actedOn returns when this process last remediated target under the policy, within
// inFlightFor.
func (r *Reconciler) actedOn(p *v1alpha1.LayerPolicy, target string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.inFlight[p.Namespace+"/"+p.Name][target]
	return at, ok && r.Clock.Now().Sub(at) < inFlightFor
}

func (r *Reconciler) acted(p *v1alpha1.LayerPolicy, target string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inFlight == nil {
		r.inFlight = map[string]map[string]time.Time{}
	}
	key := p.Namespace + "/" + p.Name
	if r.inFlight[key] == nil {
		r.inFlight[key] = map[string]time.Time{}
	}
	for t, when := range r.inFlight[key] {
		if at.Sub(when) > inFlightFor {
			delete(r.inFlight[key], t)
		}
	}
	r.inFlight[key][target] = at
}

// historyAnnotations record a remediation on the workload.
func historyAnnotations(p *v1alpha1.LayerPolicy, action v1alpha1.RemediationAction, count int, now time.Time) map[string]string {
	return map[string]string{
		v1alpha1.AnnotationLastRemediation:   now.UTC().Format(time.RFC3339),
		v1alpha1.AnnotationRemediationCount:  strconv.Itoa(count),
		v1alpha1.AnnotationRemediatedBy:      p.Name,
		v1alpha1.AnnotationRemediationAction: string(action),
	}
}

// rolloutRestart does what `kubectl rollout restart` does: a new restartedAt annotation on
// the pod template, which makes the workload's controller roll every pod, in one patch with
// the workload's remediation history.
func (r *Reconciler) rolloutRestart(ctx context.Context, pod *corev1.Pod, p *v1alpha1.LayerPolicy, owner client.Object,
	kind, name string, count int, msg string, now time.Time) error {
	if owner == nil {
		return fmt.Errorf("%s %s/%s not found", kind, pod.Namespace, name)
	}
	reason := truncate(fmt.Sprintf("policy %s: %s", p.Name, msg), 1024)
	patch := map[string]any{
		"metadata": map[string]any{"annotations": historyAnnotations(p, v1alpha1.ActionRolloutRestart, count, now)},
		"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{"annotations": map[string]string{
			v1alpha1.AnnotationRestartedAt:   now.Format(time.RFC3339),
			v1alpha1.AnnotationRestartReason: reason,
		}}}},
	}
	raw, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if err := r.Client.Patch(ctx, owner, client.RawPatch(types.MergePatchType, raw)); err != nil {
		return fmt.Errorf("restarting %s %s: %w", kind, name, err)
	}
	r.acted(p, kind+"/"+name, now)
	r.markRemediated(pod)
	remediationsTotal.WithLabelValues(string(v1alpha1.ActionRolloutRestart), "done").Inc()
	note := truncate(fmt.Sprintf("rollout restart (remediation %d in a row): %s", count, msg), 1024)
	r.Recorder.Eventf(owner, p, corev1.EventTypeWarning, v1alpha1.EventRolloutRestarted, "RolloutRestart", "%s", note)
	r.Recorder.Eventf(pod, p, corev1.EventTypeWarning, v1alpha1.EventRolloutRestarted, "RolloutRestart", "%s", note)
	ctrl.LoggerFrom(ctx).Info("rolled workload", "kind", kind, "name", name, "policy", p.Name, "count", count)
	return nil
}

// refusals counts a pod's refused evictions and when the last was refused.
type refusals struct {
	n    int
	last time.Time
}

// evict evicts the pod through the Eviction API, so PodDisruptionBudgets hold; a refusal is
// retried with backoff (EvictionRetryAfter) and reported as RemediationBlocked after
// EvictionBlockedAfter tries.
func (r *Reconciler) evict(ctx context.Context, pod *corev1.Pod, p *v1alpha1.LayerPolicy, owner client.Object, count int,
	msg string, now time.Time) (ctrl.Result, error) {
	if pod.Annotations[v1alpha1.AnnotationRemediatedBy] != p.Name {
		patch := client.MergeFrom(pod.DeepCopy())
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[v1alpha1.AnnotationRemediatedBy] = p.Name
		if err := r.Client.Patch(ctx, pod, patch); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	// A reconcile brought by a new report does not hasten a refused eviction's retry.
	key := client.ObjectKeyFromObject(pod)
	r.mu.Lock()
	prev := r.evictions[key]
	r.mu.Unlock()
	if wait := EvictionRetryAfter(prev.n, prev.last, now); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace}}
	err := r.Evict(ctx, ev)
	if apierrors.IsTooManyRequests(err) {
		r.mu.Lock()
		if r.evictions == nil {
			r.evictions = map[types.NamespacedName]refusals{}
		}
		n := prev.n + 1
		r.evictions[key] = refusals{n: n, last: now}
		r.mu.Unlock()
		remediationsTotal.WithLabelValues(string(v1alpha1.ActionEvictPod), "refused").Inc()
		if n == EvictionBlockedAfter {
			note := truncate(fmt.Sprintf("eviction refused %d times (%v); still retrying, never forcing: %s", n, err, msg), 1024)
			r.Recorder.Eventf(pod, p, corev1.EventTypeWarning, v1alpha1.EventRemediationBlocked, "EvictPod", "%s", note)
			if owner != nil {
				r.Recorder.Eventf(owner, p, corev1.EventTypeWarning, v1alpha1.EventRemediationBlocked, "EvictPod", "%s", note)
			}
		}
		return ctrl.Result{RequeueAfter: EvictionRetryAfter(n, now, now)}, nil
	}
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.acted(p, "Pod/"+pod.Name, now)
	r.markRemediated(pod)
	remediationsTotal.WithLabelValues(string(v1alpha1.ActionEvictPod), "done").Inc()
	note := truncate(fmt.Sprintf("evicted (remediation %d in a row): %s", count, msg), 1024)
	r.Recorder.Eventf(pod, p, corev1.EventTypeWarning, v1alpha1.EventPodEvicted, "EvictPod", "%s", note)
	if owner != nil {
		r.Recorder.Eventf(owner, p, corev1.EventTypeWarning, v1alpha1.EventPodEvicted, "EvictPod", "%s", note)
		raw, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": historyAnnotations(p, v1alpha1.ActionEvictPod, count, now)}})
		if err == nil {
			err = r.Client.Patch(ctx, owner, client.RawPatch(types.MergePatchType, raw))
		}
		if err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	return ctrl.Result{}, nil
}

// NewEvictor posts Evictions without client-go's automatic retries of a 429 (which would
// block the controller for minutes behind a PodDisruptionBudget): the controller retries with
// its own backoff and reports the refusal.
func NewEvictor(cfg *rest.Config) (func(context.Context, *policyv1.Eviction) error, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc := cs.CoreV1().RESTClient()
	return func(ctx context.Context, ev *policyv1.Eviction) error {
		return rc.Post().Namespace(ev.Namespace).Resource("pods").Name(ev.Name).SubResource("eviction").
			Body(ev).MaxRetries(0).Do(ctx).Error()
	}, nil
}

// skip reports a held remediation once per reason and pod.
func (r *Reconciler) skip(pod *corev1.Pod, p *v1alpha1.LayerPolicy, owner client.Object, reason, msg string) {
	r.mu.Lock()
	if r.lastSkip == nil {
		r.lastSkip = map[types.NamespacedName]string{}
	}
	key := client.ObjectKeyFromObject(pod)
	// Right after its workload was remediated, a pod on its way out is held by the cooldown
	// and the rollout that started: expected, not worth an event.
	if at, ok := r.remediatedAt[key]; ok && r.Clock.Now().Sub(at) < quietAfterRemediation && reason != "OffloadFailed" {
		r.mu.Unlock()
		return
	}
	same := r.lastSkip[key] == reason
	r.lastSkip[key] = reason
	r.mu.Unlock()
	if same || reason == evaluation.SkipNotOverRestart {
		return
	}
	remediationsTotal.WithLabelValues("", "skipped:"+reason).Inc()
	typ, evReason := corev1.EventTypeNormal, v1alpha1.EventRemediationSkipped
	if reason == "OffloadFailed" {
		typ, evReason = corev1.EventTypeWarning, v1alpha1.EventRemediationBlocked
	}
	// The action is the reason: events with the same regarding object, reason and action
	// are folded into one series that keeps the first note.
	note := truncate(reason+": "+msg, 1024)
	r.Recorder.Eventf(pod, p, typ, evReason, reason, "%s", note)
	if owner != nil {
		r.Recorder.Eventf(owner, p, typ, evReason, reason, "%s", note)
	}
}

// alreadyOrderedRetry is when to look again after an order's name was already taken.
const alreadyOrderedRetry = 5 * time.Second

// quietAfterRemediation is how long the skips of a pod whose workload was just remediated
// are not reported.
const quietAfterRemediation = 5 * time.Minute

func (r *Reconciler) markRemediated(pod *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.remediatedAt == nil {
		r.remediatedAt = map[types.NamespacedName]time.Time{}
	}
	r.remediatedAt[client.ObjectKeyFromObject(pod)] = r.Clock.Now()
}

func (r *Reconciler) clearSkip(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.lastSkip, key)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// SetupWithManager registers the controller: pods, and the pods concerned by a report, a
// policy or a LayerOffload that changed.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("remediation").
		For(&corev1.Pod{}, builder.WithPredicates(predicate.Or(predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{}, phaseChanged{}))).
		Watches(&v1alpha1.NodeLayerReport{}, handler.EnqueueRequestsFromMapFunc(r.podsOfReport)).
		Watches(&v1alpha1.LayerPolicy{}, handler.EnqueueRequestsFromMapFunc(r.podsOfPolicy)).
		Watches(&v1alpha1.LayerOffload{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
			lo := o.(*v1alpha1.LayerOffload)
			return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: lo.Namespace, Name: lo.Spec.PodName}}}
		})).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.podsOfWorkload)).
		Watches(&appsv1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(r.podsOfWorkload)).
		Complete(r)
}

// phaseChanged passes a pod's scheduling and phase changes.
type phaseChanged struct{ predicate.Funcs }

func (phaseChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*corev1.Pod)
	n, ok2 := e.ObjectNew.(*corev1.Pod)
	return ok1 && ok2 && (o.Spec.NodeName != n.Spec.NodeName || o.Status.Phase != n.Status.Phase)
}

// enforcing reports whether the namespace has an Enforce policy (nothing to do otherwise).
func (r *Reconciler) enforcing(ctx context.Context, ns string) bool {
	var list v1alpha1.LayerPolicyList
	if err := r.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return false
	}
	for i := range list.Items {
		if list.Items[i].Spec.Mode == v1alpha1.ModeEnforce {
			return true
		}
	}
	return false
}

func (r *Reconciler) podsOfReport(ctx context.Context, obj client.Object) []ctrl.Request {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.MatchingFields{gather.PodNodeNameField: obj.GetName()}); err != nil {
		return nil
	}
	enforcing := map[string]bool{}
	var reqs []ctrl.Request
	for i := range pods.Items {
		ns := pods.Items[i].Namespace
		e, ok := enforcing[ns]
		if !ok {
			e = r.enforcing(ctx, ns)
			enforcing[ns] = e
		}
		if e {
			reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&pods.Items[i])})
		}
	}
	return reqs
}

func (r *Reconciler) podsOfPolicy(ctx context.Context, obj client.Object) []ctrl.Request {
	p, ok := obj.(*v1alpha1.LayerPolicy)
	if !ok || p.Spec.Mode != v1alpha1.ModeEnforce {
		return nil
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(p.Namespace)); err != nil {
		return nil
	}
	var reqs []ctrl.Request
	for i := range pods.Items {
		if gather.Selects(p, &pods.Items[i]) {
			reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&pods.Items[i])})
		}
	}
	return reqs
}

// podsOfWorkload enqueues the pods of a namespace with an Enforce policy when a workload's
// rollout moves (a held restart may proceed).
func (r *Reconciler) podsOfWorkload(ctx context.Context, obj client.Object) []ctrl.Request {
	if obj.GetAnnotations()[v1alpha1.AnnotationRemediatedBy] == "" && !r.enforcing(ctx, obj.GetNamespace()) {
		return nil
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	var reqs []ctrl.Request
	for i := range pods.Items {
		if pods.Items[i].Annotations[v1alpha1.AnnotationState] == string(v1alpha1.StateRestart) {
			reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&pods.Items[i])})
		}
	}
	return reqs
}
