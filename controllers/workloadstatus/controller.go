package workloadstatus

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
	"github.com/layerkeeper/layerkeeper/controllers/gather"
	"github.com/layerkeeper/layerkeeper/controllers/podstate"
)

// Reconciler keeps one workload kind's condition and annotations.
type Reconciler struct {
	Client   client.Client
	Gatherer *gather.Gatherer
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Kind     Kind
}

// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=apps,resources=deployments/status;statefulsets/status;daemonsets/status,verbs=get;patch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch

// Reconcile brings one workload's condition and annotations in line with its pods.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	w := r.Kind.New()
	if err := r.Client.Get(ctx, req.NamespacedName, w); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return r.Sync(ctx, w)
}

// Sync evaluates the workload's pods and writes what changed: annotations (one metadata patch)
// and the condition (one status patch with an optimistic lock, so a condition another
// controller wrote meanwhile is never lost).
func (r *Reconciler) Sync(ctx context.Context, w client.Object) (ctrl.Result, error) {
	if !w.GetDeletionTimestamp().IsZero() {
		return ctrl.Result{}, nil
	}
	decisions, requeue, err := r.evaluatePods(ctx, w)
	if err != nil {
		return ctrl.Result{}, err
	}
	s := Summarize(r.Kind.Name, w.GetName(), decisions)

	from := podstate.StateOf(w.GetAnnotations())
	want, keep := DesiredAnnotations(s)
	if !keep {
		if updated, changed := podstate.Apply(w.GetAnnotations(), want); changed {
			patch := client.MergeFrom(w.DeepCopyObject().(client.Object))
			w.SetAnnotations(updated)
			if err := r.Client.Patch(ctx, w, patch); err != nil {
				return ctrl.Result{}, fmt.Errorf("annotating %s %s/%s: %w", r.Kind.Name, w.GetNamespace(), w.GetName(), err)
			}
			if typ, reason := podstate.Transition(from, podstate.StateOf(updated)); reason != "" {
				r.Recorder.Eventf(w, nil, typ, reason, "Evaluate", "%s", s.Condition.Message)
			}
		}
	}

	base := w.DeepCopyObject().(client.Object)
	cur, had := r.Kind.Get(w)
	changed := false
	if s.Covered {
		var next Condition
		next, changed = NextCondition(cur, had, s.Condition, metav1.NewTime(r.Clock.Now()))
		if changed {
			r.Kind.Set(w, next)
		}
	} else {
		changed = r.Kind.Remove(w)
	}
	if changed {
		patch := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
		if err := r.Client.Status().Patch(ctx, w, patch); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{Requeue: true}, nil
			}
			return ctrl.Result{}, fmt.Errorf("setting %s on %s %s/%s: %w", condType, r.Kind.Name, w.GetNamespace(), w.GetName(), err)
		}
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// evaluatePods evaluates every covered pod the workload controls. It also says when to look
// again: when the freshest figures go stale, or soon when some are missing.
func (r *Reconciler) evaluatePods(ctx context.Context, w client.Object) ([]evaluation.Decision, time.Duration, error) {
	sel, err := metav1.LabelSelectorAsSelector(r.Kind.Selector(w))
	if err != nil {
		return nil, 0, nil
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(w.GetNamespace()), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, 0, fmt.Errorf("listing pods of %s %s/%s: %w", r.Kind.Name, w.GetNamespace(), w.GetName(), err)
	}
	var decisions []evaluation.Decision
	var requeue time.Duration
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !pod.DeletionTimestamp.IsZero() || !r.Kind.Owns(ctx, r.Client, w, pod) {
			continue
		}
		res, err := r.Gatherer.Evaluate(ctx, pod)
		if err != nil {
			return nil, 0, err
		}
		if !res.Covered() {
			continue
		}
		decisions = append(decisions, res.Decision)
		next := r.Gatherer.StaleIn(res.Report)
		if res.Decision.Status == metav1.ConditionUnknown {
			next = 30 * time.Second
		}
		if next > 0 && (requeue == 0 || next < requeue) {
			requeue = next
		}
	}
	return decisions, requeue, nil
}

// SetupWithManager registers the controller for its kind: the workload itself, its pods'
// annotation and label changes, and policies of its namespace.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("workloadstatus-"+r.Kind.Name).
		For(r.Kind.New(), builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.ownerOfPod),
			builder.WithPredicates(predicate.Or(predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		Watches(&v1alpha1.LayerPolicy{}, handler.EnqueueRequestsFromMapFunc(r.workloadsOfPolicy)).
		Watches(&v1alpha1.NodeLayerReport{}, handler.EnqueueRequestsFromMapFunc(r.workloadsOfReport)).
		Complete(r)
}

// ownerOfPod maps a pod to the workload of this kind controlling it.
func (r *Reconciler) ownerOfPod(ctx context.Context, obj client.Object) []ctrl.Request {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil
	}
	name, ok := OwnerName(ctx, r.Client, pod, r.Kind.Name)
	if !ok {
		return nil
	}
	return []ctrl.Request{{NamespacedName: client.ObjectKey{Namespace: pod.Namespace, Name: name}}}
}

// workloadsOfPolicy enqueues every workload of this kind in the policy's namespace: a policy
// change can start or stop covering any of them.
func (r *Reconciler) workloadsOfPolicy(ctx context.Context, obj client.Object) []ctrl.Request {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(obj.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing pods for policy", "policy", obj.GetName())
		return nil
	}
	seen := map[string]bool{}
	var reqs []ctrl.Request
	for i := range pods.Items {
		if name, ok := OwnerName(ctx, r.Client, &pods.Items[i], r.Kind.Name); ok && !seen[name] {
			seen[name] = true
			reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: name}})
		}
	}
	return reqs
}

// workloadsOfReport enqueues the workloads of this kind with pods on the report's node in
// namespaces that have policies. The agent writes a report only when a figure moved or a
// heartbeat is due, and the queue folds repeated requests for one workload.
func (r *Reconciler) workloadsOfReport(ctx context.Context, obj client.Object) []ctrl.Request {
	var policies v1alpha1.LayerPolicyList
	if err := r.Client.List(ctx, &policies); err != nil || len(policies.Items) == 0 {
		return nil
	}
	namespaces := map[string]bool{}
	for i := range policies.Items {
		namespaces[policies.Items[i].Namespace] = true
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.MatchingFields{gather.PodNodeNameField: obj.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing pods of node", "node", obj.GetName())
		return nil
	}
	seen := map[client.ObjectKey]bool{}
	var reqs []ctrl.Request
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !namespaces[pod.Namespace] {
			continue
		}
		if name, ok := OwnerName(ctx, r.Client, pod, r.Kind.Name); ok {
			key := client.ObjectKey{Namespace: pod.Namespace, Name: name}
			if !seen[key] {
				seen[key] = true
				reqs = append(reqs, ctrl.Request{NamespacedName: key})
			}
		}
	}
	return reqs
}
