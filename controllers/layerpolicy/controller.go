package layerpolicy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
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
	"github.com/layerkeeper/layerkeeper/controllers/podstate"
	"github.com/layerkeeper/layerkeeper/controllers/workloadstatus"
)

// ResyncPeriod is how often a policy's counts are recomputed without any event.
const ResyncPeriod = time.Minute

// Reconciler reconciles LayerPolicies.
type Reconciler struct {
	Client    client.Client
	APIReader client.Reader // uncached: Secrets are read one by one, never listed or watched
	Gatherer  *gather.Gatherer
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// Pods and Workloads clean up after a deleted policy.
	Pods      *podstate.Reconciler
	Workloads []*workloadstatus.Reconciler
}

// +kubebuilder:rbac:groups=layerkeeper.dev,resources=layerpolicies,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=layerkeeper.dev,resources=layerpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=layerkeeper.dev,resources=layerpolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// Reconcile validates a policy, computes its status and cleans up after it on deletion.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	p := &v1alpha1.LayerPolicy{}
	if err := r.Client.Get(ctx, req.NamespacedName, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, p)
	}
	if controllerutil.AddFinalizer(p, v1alpha1.LayerPolicyFinalizer) {
		if err := r.Client.Update(ctx, p); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
	}

	base := p.DeepCopy()
	defer func() {
		if retErr == nil {
			p.Status.ObservedGeneration = p.Generation
		}
		if equality.Semantic.DeepEqual(base.Status, p.Status) {
			return
		}
		// The controller is the status' only writer: a merge patch without a lock.
		if err := r.Client.Status().Patch(ctx, p, client.MergeFrom(base)); err != nil && retErr == nil {
			retErr = fmt.Errorf("writing status: %w", err)
		}
	}()

	secret, err := credentialsSecret(ctx, r.APIReader, p)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("reading credentials Secret: %w", err)
	}
	ready := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonPolicyReady,
		Message: "the policy is valid", ObservedGeneration: p.Generation}
	offloads, remediated, err := r.actions(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	p.Status.LastActions = LastActions(offloads, remediated)
	pods, nodes, err := r.evaluateSelected(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	problem := Validate(p, secret, nodes)
	if problem == nil {
		problem = BucketProblem(offloads)
	}
	if problem != nil {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, problem.Reason, problem.Message
	}

	counts := Counts(p.Name, pods)
	if ready.Status == metav1.ConditionTrue {
		ready.Message = fmt.Sprintf("the policy is valid; it selects %d pods, %d over a threshold", counts.MatchedPods, counts.OverLimitPods)
	}
	if len(counts.OverlappingPolicies) > 0 && !slices.Equal(counts.OverlappingPolicies, p.Status.OverlappingPolicies) {
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, v1alpha1.EventPoliciesOverlap, "Evaluate",
			"policies %v also select pods of this policy; for those pods the most restrictive threshold applies", counts.OverlappingPolicies)
	}
	setCounts(&p.Status, counts)
	meta.SetStatusCondition(&p.Status.Conditions, ready)
	recordMetrics(p, counts)
	return ctrl.Result{RequeueAfter: ResyncPeriod}, nil
}

func setCounts(st *v1alpha1.LayerPolicyStatus, c v1alpha1.LayerPolicyStatus) {
	st.MatchedPods = c.MatchedPods
	st.OverLimitPods = c.OverLimitPods
	st.PodsByState = c.PodsByState
	st.WorstOffenders = c.WorstOffenders
	st.OverlappingPolicies = c.OverlappingPolicies
}

// actions reads the policy's LayerOffloads and the workloads it remediated.
func (r *Reconciler) actions(ctx context.Context, p *v1alpha1.LayerPolicy) ([]v1alpha1.LayerOffload, []Remediated, error) {
	var offloads v1alpha1.LayerOffloadList
	if err := r.Client.List(ctx, &offloads, client.InNamespace(p.Namespace), client.MatchingLabels{v1alpha1.LabelPolicy: p.Name}); err != nil {
		return nil, nil, fmt.Errorf("listing LayerOffloads: %w", err)
	}
	var out []Remediated
	for _, w := range r.Workloads {
		list := w.Kind.NewList()
		if err := r.Client.List(ctx, list, client.InNamespace(p.Namespace)); err != nil {
			return nil, nil, fmt.Errorf("listing %ss: %w", w.Kind.Name, err)
		}
		if err := meta.EachListItem(list, func(o runtime.Object) error {
			obj, ok := o.(client.Object)
			if !ok {
				return nil
			}
			ann := obj.GetAnnotations()
			if ann[v1alpha1.AnnotationRemediatedBy] != p.Name {
				return nil
			}
			at, err := time.Parse(time.RFC3339, ann[v1alpha1.AnnotationLastRemediation])
			if err != nil {
				return nil
			}
			out = append(out, Remediated{Target: w.Kind.Name + "/" + obj.GetName(), Time: at, Count: ann[v1alpha1.AnnotationRemediationCount],
				Action: v1alpha1.RemediationAction(ann[v1alpha1.AnnotationRemediationAction])})
			return nil
		}); err != nil {
			return nil, nil, err
		}
	}
	return offloads.Items, out, nil
}

// evaluateSelected evaluates every pod the policy selects. nodes are the kubelet eviction
// thresholds of the nodes running them (those with a report), sorted by name.
func (r *Reconciler) evaluateSelected(ctx context.Context, p *v1alpha1.LayerPolicy) ([]PodResult, []evaluation.NodeKubelet, error) {
	var list corev1.PodList
	if err := r.Client.List(ctx, &list, client.InNamespace(p.Namespace)); err != nil {
		return nil, nil, fmt.Errorf("listing pods: %w", err)
	}
	var out []PodResult
	var nodes []evaluation.NodeKubelet
	for i := range list.Items {
		pod := &list.Items[i]
		if !pod.DeletionTimestamp.IsZero() || !gather.Selects(p, pod) {
			continue
		}
		res, err := r.Gatherer.Evaluate(ctx, pod)
		if err != nil {
			return nil, nil, err
		}
		pr := PodResult{Pod: pod.Name, Node: pod.Spec.NodeName, Decision: res.Decision}
		for _, q := range res.Policies {
			pr.Policies = append(pr.Policies, q.Name)
		}
		out = append(out, pr)
		if res.Report != nil && !slices.ContainsFunc(nodes, func(n evaluation.NodeKubelet) bool { return n.Node == res.Report.Name }) {
			nodes = append(nodes, evaluation.NodeKubeletOf(res.Report))
		}
	}
	slices.SortFunc(nodes, func(a, b evaluation.NodeKubelet) int { return strings.Compare(a.Node, b.Node) })
	return out, nodes, nil
}

// finalize removes what layerkeeper wrote because of the policy: the pods it annotated and
// the workloads it set a condition on are evaluated again without it, then the finalizer goes.
func (r *Reconciler) finalize(ctx context.Context, p *v1alpha1.LayerPolicy) error {
	if !controllerutil.ContainsFinalizer(p, v1alpha1.LayerPolicyFinalizer) {
		return nil
	}
	var list corev1.PodList
	if err := r.Client.List(ctx, &list, client.InNamespace(p.Namespace)); err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	owners := map[string]map[string]bool{}
	for i := range list.Items {
		pod := &list.Items[i]
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.Selector)
		selected := err == nil && sel.Matches(labels.Set(pod.Labels))
		if !selected && pod.Annotations[v1alpha1.AnnotationPolicy] != p.Name {
			continue
		}
		if _, err := r.Pods.Sync(ctx, pod); err != nil {
			return err
		}
		kind, name := workloadstatus.Owner(ctx, r.Client, pod)
		if owners[kind] == nil {
			owners[kind] = map[string]bool{}
		}
		owners[kind][name] = true
	}
	for _, w := range r.Workloads {
		for name := range owners[w.Kind.Name] {
			obj := w.Kind.New()
			if err := r.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: name}, obj); err != nil {
				if client.IgnoreNotFound(err) != nil {
					return err
				}
				continue
			}
			if _, err := w.Sync(ctx, obj); err != nil {
				return err
			}
		}
	}
	forgetMetrics(p)
	controllerutil.RemoveFinalizer(p, v1alpha1.LayerPolicyFinalizer)
	return r.Client.Update(ctx, p)
}

// SetupWithManager registers the controller: policies, and pods whose labels or layerkeeper
// annotations change (their state feeds the counts).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("layerpolicy").
		For(&v1alpha1.LayerPolicy{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletionPredicate{}))).
		Watches(&v1alpha1.LayerOffload{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
			return []ctrl.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: o.(*v1alpha1.LayerOffload).Spec.PolicyName}}}
		})).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.policiesOfPod),
			builder.WithPredicates(predicate.Or(predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		// A node's kubelet thresholds feed the Ready condition of the policies selecting its pods.
		Watches(&v1alpha1.NodeLayerReport{}, handler.EnqueueRequestsFromMapFunc(r.policiesOfReport),
			builder.WithPredicates(kubeletChanged{})).
		Complete(r)
}

// kubeletChanged passes a report's creation and deletion, and updates that change what
// ValidateNodePressure reads: the kubelet's thresholds and the filesystems they apply to.
type kubeletChanged struct{ predicate.Funcs }

func (kubeletChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*v1alpha1.NodeLayerReport)
	n, ok2 := e.ObjectNew.(*v1alpha1.NodeLayerReport)
	if !ok1 || !ok2 {
		return false
	}
	if !equality.Semantic.DeepEqual(o.Status.KubeletEviction, n.Status.KubeletEviction) || len(o.Status.Filesystems) != len(n.Status.Filesystems) {
		return true
	}
	for i, f := range n.Status.Filesystems {
		g := o.Status.Filesystems[i]
		if f.Path != g.Path || f.KubeletFilesystem != g.KubeletFilesystem || f.CapacityBytes != g.CapacityBytes || f.Inodes != g.Inodes {
			return true
		}
	}
	return false
}

// policiesOfReport returns the policies selecting a pod on the report's node.
func (r *Reconciler) policiesOfReport(ctx context.Context, obj client.Object) []ctrl.Request {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.MatchingFields{gather.PodNodeNameField: obj.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing pods of node", "node", obj.GetName())
		return nil
	}
	var reqs []ctrl.Request
	for i := range pods.Items {
		for _, req := range r.policiesOfPod(ctx, &pods.Items[i]) {
			if !slices.Contains(reqs, req) {
				reqs = append(reqs, req)
			}
		}
	}
	return reqs
}

type deletionPredicate struct{ predicate.Funcs }

func (deletionPredicate) Update(e event.UpdateEvent) bool {
	return !e.ObjectNew.GetDeletionTimestamp().IsZero()
}

func (r *Reconciler) policiesOfPod(ctx context.Context, obj client.Object) []ctrl.Request {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil
	}
	var list v1alpha1.LayerPolicyList
	if err := r.Client.List(ctx, &list, client.InNamespace(pod.Namespace)); err != nil {
		return nil
	}
	var reqs []ctrl.Request
	for i := range list.Items {
		p := &list.Items[i]
		if gather.Selects(p, pod) || pod.Annotations[v1alpha1.AnnotationPolicy] == p.Name {
			reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(p)})
		}
	}
	return reqs
}
