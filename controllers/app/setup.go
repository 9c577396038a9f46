package app

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/controllers/gather"
	"github.com/layerkeeper/layerkeeper/controllers/layerpolicy"
	"github.com/layerkeeper/layerkeeper/controllers/offload"
	"github.com/layerkeeper/layerkeeper/controllers/podstate"
	"github.com/layerkeeper/layerkeeper/controllers/remediation"
	"github.com/layerkeeper/layerkeeper/controllers/workloadstatus"
)

// SetupControllers registers every controller with the manager. The clock is injected so
// tests can drive staleness and cooldowns.
func SetupControllers(mgr ctrl.Manager, o Options) error {
	return SetupControllersWithClock(mgr, o, clock.RealClock{})
}

// SetupControllersWithClock is SetupControllers with an explicit clock.
func SetupControllersWithClock(mgr ctrl.Manager, o Options, clk clock.PassiveClock) error {
	ctx := context.Background()
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Pod{}, gather.PodNodeNameField, func(obj client.Object) []string {
		if n := obj.(*corev1.Pod).Spec.NodeName; n != "" {
			return []string{n}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing pods by node: %w", err)
	}
	g := &gather.Gatherer{Client: mgr.GetClient(), Clock: clk, StaleAfter: o.StaleAfter}
	recorder := mgr.GetEventRecorder("layerkeeper")

	pods := &podstate.Reconciler{Client: mgr.GetClient(), Gatherer: g, Recorder: recorder}
	if err := pods.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the podstate controller: %w", err)
	}
	var workloads []*workloadstatus.Reconciler
	for _, k := range workloadstatus.Kinds {
		w := &workloadstatus.Reconciler{Client: mgr.GetClient(), Gatherer: g, Recorder: recorder, Clock: clk, Kind: k}
		if err := w.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up the workloadstatus controller for %s: %w", k.Name, err)
		}
		workloads = append(workloads, w)
	}
	policies := &layerpolicy.Reconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Gatherer: g, Recorder: recorder, Clock: clk,
		Pods: pods, Workloads: workloads,
	}
	if err := policies.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the layerpolicy controller: %w", err)
	}
	evict, err := remediation.NewEvictor(mgr.GetConfig())
	if err != nil {
		return err
	}
	rem := &remediation.Reconciler{Client: mgr.GetClient(), Gatherer: g, Recorder: recorder, Clock: clk, Evict: evict}
	if err := rem.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the remediation controller: %w", err)
	}
	off := &offload.Reconciler{Client: mgr.GetClient(), Recorder: recorder, Clock: clk}
	if err := off.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the offload controller: %w", err)
	}
	return nil
}
