package podstate

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
	"github.com/layerkeeper/layerkeeper/controllers/gather"
)

// Reconciler annotates pods with their writable-layer state.
type Reconciler struct {
	Client   client.Client
	Gatherer *gather.Gatherer
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=layerkeeper.dev,resources=layerpolicies;nodelayerreports,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one pod's annotations in line with its evaluation.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	res, err := r.Sync(ctx, pod)
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.Gatherer.StaleIn(res.Report)}, nil
}

// Sync evaluates the pod and patches its annotations when they differ; the caller may be
// another controller cleaning up after a policy.
func (r *Reconciler) Sync(ctx context.Context, pod *corev1.Pod) (gather.Result, error) {
	if !pod.DeletionTimestamp.IsZero() {
		return gather.Result{}, nil
	}
	res, err := r.Gatherer.Evaluate(ctx, pod)
	if err != nil {
		return res, err
	}
	want, keep := Desired(res.Covered(), res.Decision)
	if keep {
		return res, nil
	}
	from := StateOf(pod.Annotations)
	updated, changed := Apply(pod.Annotations, want)
	if !changed {
		return res, nil
	}
	patch := client.MergeFrom(pod.DeepCopy())
	pod.Annotations = updated
	if err := r.Client.Patch(ctx, pod, patch); err != nil {
		if apierrors.IsNotFound(err) {
			return res, nil
		}
		return res, fmt.Errorf("annotating pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	to := StateOf(updated)
	if typ, reason := Transition(from, to); reason != "" {
		r.Recorder.Eventf(pod, nil, typ, reason, "Evaluate", "%s", eventNote(res.Decision, to))
	}
	return res, nil
}

func eventNote(d evaluation.Decision, to v1alpha1.LayerState) string {
	if to == v1alpha1.StateOK {
		return fmt.Sprintf("writable layer back within limits: %s", d.Message)
	}
	return d.Message
}

// SetupWithManager registers the controller: pods on any node, with changes that matter to
// the evaluation; reports map to the pods of their node; policies to the pods of their
// namespace.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("podstate").
		For(&corev1.Pod{}, builder.WithPredicates(predicate.Or(
			predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}, podScheduled{}))).
		Watches(&v1alpha1.NodeLayerReport{}, handler.EnqueueRequestsFromMapFunc(r.podsOfReport)).
		Watches(&v1alpha1.LayerPolicy{}, handler.EnqueueRequestsFromMapFunc(r.podsOfPolicy)).
		Complete(r)
}

// podScheduled passes a pod's first binding to a node and pod creation.
type podScheduled struct{ predicate.Funcs }

func (podScheduled) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*corev1.Pod)
	n, ok2 := e.ObjectNew.(*corev1.Pod)
	return ok1 && ok2 && o.Spec.NodeName != n.Spec.NodeName
}

func (r *Reconciler) podsOfReport(ctx context.Context, obj client.Object) []ctrl.Request {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.MatchingFields{gather.PodNodeNameField: obj.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing pods of node", "node", obj.GetName())
		return nil
	}
	var namespaces map[string]bool
	var reqs []ctrl.Request
	for i := range pods.Items {
		p := &pods.Items[i]
		if namespaces == nil {
			namespaces = r.namespacesWithPolicies(ctx)
		}
		if namespaces[p.Namespace] || p.Annotations[v1alpha1.AnnotationState] != "" {
			reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(p)})
		}
	}
	return reqs
}

func (r *Reconciler) namespacesWithPolicies(ctx context.Context) map[string]bool {
	var list v1alpha1.LayerPolicyList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	out := map[string]bool{}
	for i := range list.Items {
		out[list.Items[i].Namespace] = true
	}
	return out
}

// podsOfPolicy enqueues every pod of the policy's namespace the policy selects, and those
// carrying its name (it may have stopped selecting them).
func (r *Reconciler) podsOfPolicy(ctx context.Context, obj client.Object) []ctrl.Request {
	p, ok := obj.(*v1alpha1.LayerPolicy)
	if !ok {
		return nil
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(p.Namespace)); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing pods of policy", "policy", p.Name)
		return nil
	}
	var reqs []ctrl.Request
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Annotations[v1alpha1.AnnotationPolicy] == p.Name || gather.Selects(p, pod) {
			reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(pod)})
		}
	}
	return reqs
}
