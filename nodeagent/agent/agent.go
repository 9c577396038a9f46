package agent

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/gather"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery"
	"github.com/layerkeeper/layerkeeper/nodeagent/kubelet"
	"github.com/layerkeeper/layerkeeper/nodeagent/measure"
)

// PodNodeNameField selects pods by node; the agent's cache indexes it.
const PodNodeNameField = "spec.nodeName"

// FieldManager is the server-side apply field manager of the agent's writes.
const FieldManager = "layerkeeper-agent"

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get
// +kubebuilder:rbac:groups=layerkeeper.dev,resources=layerpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=layerkeeper.dev,resources=nodelayerreports,verbs=get;create;patch
// +kubebuilder:rbac:groups=layerkeeper.dev,resources=nodelayerreports/status,verbs=get;patch

// Agent measures its node and writes its report.
type Agent struct {
	Node string
	// Client reads pods bound to the node and policies (from a cache) and writes the report.
	Client   client.Client
	Measurer *measure.Measurer
	Clock    clock.PassiveClock
	Interval time.Duration
	Build    BuildOptions
	Write    WriteOptions
	Log      logr.Logger
	// Kubelet reads the node's kubelet eviction thresholds for each report (kubelet.Read);
	// nil leaves them out.
	Kubelet func() kubelet.Result

	last *v1alpha1.NodeLayerReportStatus
}

// HotPathsFor returns the hot paths of the policies selecting the container's pod, for
// measure.Options.HotPathsFor. It reads from the agent's cache.
func HotPathsFor(c client.Reader) func(discovery.Container) []string {
	return func(dc discovery.Container) []string {
		if dc.Pod == "" || dc.Namespace == "" {
			return nil
		}
		ctx := context.Background()
		pod := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: dc.Namespace, Name: dc.Pod}, pod); err != nil {
			return nil
		}
		var list v1alpha1.LayerPolicyList
		if err := c.List(ctx, &list, client.InNamespace(dc.Namespace)); err != nil {
			return nil
		}
		var out []string
		for i := range list.Items {
			p := &list.Items[i]
			if !gather.Selects(p, pod) || (len(p.Spec.Containers) > 0 && !slices.Contains(p.Spec.Containers, dc.Name)) {
				continue
			}
			for _, h := range p.Spec.HotPaths {
				if !slices.Contains(out, h.Path) {
					out = append(out, h.Path)
				}
			}
		}
		slices.Sort(out)
		return out
	}
}

// Start runs passes every Interval until ctx is done (a manager Runnable).
func (a *Agent) Start(ctx context.Context) error {
	for {
		if err := a.Pass(ctx); err != nil && ctx.Err() == nil {
			a.Log.Error(err, "measuring pass failed; retrying next interval")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(a.Interval):
		}
	}
}

// Pass measures once and writes the report if it is worth writing.
func (a *Agent) Pass(ctx context.Context) error {
	res, err := a.Measurer.Measure(ctx, nil)
	if err != nil {
		return fmt.Errorf("measuring: %w", err)
	}
	var pods corev1.PodList
	if err := a.Client.List(ctx, &pods, client.MatchingFields{PodNodeNameField: a.Node}); err != nil {
		return fmt.Errorf("listing pods of node %s: %w", a.Node, err)
	}
	now := a.Clock.Now()
	var kr *kubelet.Result
	if a.Kubelet != nil {
		r := a.Kubelet()
		kr = &r
	}
	next := Build(res, kr, pods.Items, now, a.Build)
	recordMetrics(res, next)
	if a.last == nil {
		if prev, err := a.current(ctx); err != nil {
			return err
		} else if prev != nil {
			a.last = &prev.Status
		}
	}
	if a.last != nil {
		// Keep the condition's transition time while its status holds.
		conds := slices.Clone(a.last.Conditions)
		for _, c := range next.Conditions {
			meta.SetStatusCondition(&conds, c)
		}
		next.Conditions = conds
	}
	write, reason := ShouldWrite(a.last, &next, now, a.Write)
	if !write {
		return nil
	}
	if err := a.write(ctx, &next); err != nil {
		return err
	}
	reportWrites.WithLabelValues(reason).Inc()
	a.last = &next
	a.Log.V(1).Info("report written", "reason", reason, "containers", next.ContainerCount, "bytes", next.TotalBytes)
	return nil
}

func (a *Agent) current(ctx context.Context) (*v1alpha1.NodeLayerReport, error) {
	r := &v1alpha1.NodeLayerReport{}
	if err := a.Client.Get(ctx, client.ObjectKey{Name: a.Node}, r); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading NodeLayerReport %s: %w", a.Node, err)
	}
	return r, nil
}

// write creates the report (owned by the Node, so it goes with it) if missing, then applies
// its status with server-side apply.
func (a *Agent) write(ctx context.Context, st *v1alpha1.NodeLayerReportStatus) error {
	gvk := v1alpha1.GroupVersion.WithKind("NodeLayerReport")
	if a.last == nil { // first write of this process: make sure the object exists, owned by the Node
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(gvk)
		obj.SetName(a.Node)
		node := &corev1.Node{}
		if err := a.Client.Get(ctx, client.ObjectKey{Name: a.Node}, node); err == nil {
			obj.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}})
		}
		if err := a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying NodeLayerReport %s: %w", a.Node, err)
		}
	}
	status, err := runtime.DefaultUnstructuredConverter.ToUnstructured(st)
	if err != nil {
		return err
	}
	su := &unstructured.Unstructured{}
	su.SetGroupVersionKind(gvk)
	su.SetName(a.Node)
	su.Object["status"] = status
	if err := a.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(su), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying NodeLayerReport %s status: %w", a.Node, err)
	}
	return nil
}
