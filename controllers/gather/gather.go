package gather

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
)

// PodNodeNameField indexes pods by spec.nodeName in the manager's cache.
const PodNodeNameField = "spec.nodeName"

// Gatherer reads the inputs of evaluation.Evaluate.
type Gatherer struct {
	Client     client.Reader
	Clock      clock.PassiveClock
	StaleAfter time.Duration
}

// Result is a pod's evaluation with what it was made from.
type Result struct {
	// Policies are the live policies selecting the pod, sorted by name.
	Policies []*v1alpha1.LayerPolicy
	// Decision is the evaluation; meaningless when Policies is empty.
	Decision evaluation.Decision
	// Report is the pod's node's report; nil when there is none.
	Report *v1alpha1.NodeLayerReport
}

// Covered reports whether any policy selects the pod.
func (r Result) Covered() bool { return len(r.Policies) > 0 }

// Selects reports whether a live policy selects the pod. A policy with an invalid selector
// selects nothing (its Ready condition says why).
func Selects(p *v1alpha1.LayerPolicy, pod *corev1.Pod) bool {
	if p.Namespace != pod.Namespace || !p.DeletionTimestamp.IsZero() {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(&p.Spec.Selector)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(pod.Labels))
}

// PoliciesFor lists the live policies of the pod's namespace that select it, sorted by name.
func (g *Gatherer) PoliciesFor(ctx context.Context, pod *corev1.Pod) ([]*v1alpha1.LayerPolicy, error) {
	var list v1alpha1.LayerPolicyList
	if err := g.Client.List(ctx, &list, client.InNamespace(pod.Namespace)); err != nil {
		return nil, fmt.Errorf("listing LayerPolicies in %s: %w", pod.Namespace, err)
	}
	var out []*v1alpha1.LayerPolicy
	for i := range list.Items {
		if Selects(&list.Items[i], pod) {
			out = append(out, &list.Items[i])
		}
	}
	slices.SortFunc(out, func(a, b *v1alpha1.LayerPolicy) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Report returns the NodeLayerReport of a node, or nil when there is none.
func (g *Gatherer) Report(ctx context.Context, node string) (*v1alpha1.NodeLayerReport, error) {
	if node == "" {
		return nil, nil
	}
	r := &v1alpha1.NodeLayerReport{}
	if err := g.Client.Get(ctx, client.ObjectKey{Name: node}, r); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading NodeLayerReport %s: %w", node, err)
	}
	return r, nil
}

// Evaluate gathers a pod's inputs and evaluates it.
func (g *Gatherer) Evaluate(ctx context.Context, pod *corev1.Pod) (Result, error) {
	policies, err := g.PoliciesFor(ctx, pod)
	if err != nil || len(policies) == 0 {
		return Result{}, err
	}
	report, err := g.Report(ctx, pod.Spec.NodeName)
	if err != nil {
		return Result{}, err
	}
	figures := evaluation.PodFigures{Namespace: pod.Namespace, Pod: pod.Name, PodUID: string(pod.UID), Node: pod.Spec.NodeName}
	var nodePods []evaluation.PodFigures
	if report != nil {
		nodePods = evaluation.PodsFromReport(report)
		for i := range nodePods {
			if nodePods[i].PodUID == string(pod.UID) || (nodePods[i].PodUID == "" && nodePods[i].Namespace == pod.Namespace && nodePods[i].Pod == pod.Name) {
				figures = nodePods[i]
				break
			}
		}
	}
	in := evaluation.Input{Policies: policies, Pod: figures, Now: g.Clock.Now(), StaleAfter: g.StaleAfter}
	if slices.ContainsFunc(policies, func(p *v1alpha1.LayerPolicy) bool { return p.Spec.NodePressure != nil }) && report != nil {
		plan, err := g.nodePressurePlan(ctx, report, nodePods)
		if err != nil {
			return Result{}, err
		}
		in.NodePressure = plan
	}
	start := time.Now()
	d := evaluation.Evaluate(in)
	evaluationSeconds.Observe(time.Since(start).Seconds())
	return Result{Policies: policies, Decision: d, Report: report}, nil
}

// nodePressurePlan plans node pressure over every covered container of the report's node.
func (g *Gatherer) nodePressurePlan(ctx context.Context, report *v1alpha1.NodeLayerReport, nodePods []evaluation.PodFigures) (*evaluation.NodePressurePlan, error) {
	var candidates []evaluation.Candidate
	for i := range nodePods {
		pf := &nodePods[i]
		pod := &corev1.Pod{}
		if err := g.Client.Get(ctx, client.ObjectKey{Namespace: pf.Namespace, Name: pf.Pod}, pod); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		policies, err := g.PoliciesFor(ctx, pod)
		if err != nil {
			return nil, err
		}
		candidates = append(candidates, evaluation.NodeCandidates(*pf, policies)...)
	}
	return evaluation.PlanNodePressure(report.Status.Filesystems, candidates, evaluation.NodeKubeletOf(report).Thresholds), nil
}

// StaleIn returns how long until the report's figures go stale (for a requeue), or 0 when
// there is no report or it is stale already.
func (g *Gatherer) StaleIn(report *v1alpha1.NodeLayerReport) time.Duration {
	if report == nil || report.Status.ScanTime == nil {
		return 0
	}
	staleAfter := g.StaleAfter
	if staleAfter <= 0 {
		staleAfter = evaluation.DefaultStaleAfter
	}
	left := report.Status.ScanTime.Add(staleAfter).Sub(g.Clock.Now())
	if left <= 0 {
		return 0
	}
	return left + time.Second
}
