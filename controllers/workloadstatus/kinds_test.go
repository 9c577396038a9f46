package workloadstatus

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// cond is a kind-neutral workload condition, so one table runs over every kind.
type cond struct {
	Type                               string
	Status                             corev1.ConditionStatus
	Reason, Message                    string
	LastTransitionTime, LastUpdateTime metav1.Time
}

// kindAdapter builds a workload of one kind with conditions and reads them back.
type kindAdapter struct {
	kind Kind
	// hasUpdateTime: the kind's conditions carry lastUpdateTime (Deployments only).
	hasUpdateTime bool
	build         func(...cond) client.Object
	read          func(client.Object) []cond
}

var kindAdapters = []kindAdapter{
	{
		kind: deploymentKind, hasUpdateTime: true,
		build: func(cs ...cond) client.Object {
			d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}
			for _, c := range cs {
				d.Status.Conditions = append(d.Status.Conditions, appsv1.DeploymentCondition{Type: appsv1.DeploymentConditionType(c.Type),
					Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime, LastUpdateTime: c.LastUpdateTime})
			}
			return d
		},
		read: func(o client.Object) []cond {
			var out []cond
			for _, c := range o.(*appsv1.Deployment).Status.Conditions {
				out = append(out, cond{string(c.Type), c.Status, c.Reason, c.Message, c.LastTransitionTime, c.LastUpdateTime})
			}
			return out
		},
	},
	{
		kind: statefulSetKind,
		build: func(cs ...cond) client.Object {
			s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}}
			for _, c := range cs {
				s.Status.Conditions = append(s.Status.Conditions, appsv1.StatefulSetCondition{Type: appsv1.StatefulSetConditionType(c.Type),
					Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime})
			}
			return s
		},
		read: func(o client.Object) []cond {
			var out []cond
			for _, c := range o.(*appsv1.StatefulSet).Status.Conditions {
				out = append(out, cond{Type: string(c.Type), Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime})
			}
			return out
		},
	},
	{
		kind: daemonSetKind,
		build: func(cs ...cond) client.Object {
			s := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "shop"}}
			for _, c := range cs {
				s.Status.Conditions = append(s.Status.Conditions, appsv1.DaemonSetCondition{Type: appsv1.DaemonSetConditionType(c.Type),
					Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime})
			}
			return s
		},
		read: func(o client.Object) []cond {
			var out []cond
			for _, c := range o.(*appsv1.DaemonSet).Status.Conditions {
				out = append(out, cond{Type: string(c.Type), Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime})
			}
			return out
		},
	},
}

func TestKindsCoverEveryWorkload(t *testing.T) {
	var got []string
	for _, k := range Kinds {
		got = append(got, k.Name)
	}
	if diff := cmp.Diff([]string{"Deployment", "StatefulSet", "DaemonSet"}, got); diff != "" {
		t.Errorf("Kinds (-want +got):\n%s", diff)
	}
	if len(kindAdapters) != len(Kinds) {
		t.Errorf("the tests adapt %d kinds, Kinds has %d", len(kindAdapters), len(Kinds))
	}
}

func TestKindNewAndSelector(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	cases := []struct {
		kind Kind
		obj  client.Object
	}{
		{deploymentKind, &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Selector: sel}}},
		{statefulSetKind, &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Selector: sel}}},
		{daemonSetKind, &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Selector: sel}}},
	}
	for _, tc := range cases {
		t.Run(tc.kind.Name, func(t *testing.T) {
			if got, want := fmt.Sprintf("%T", tc.kind.New()), fmt.Sprintf("%T", tc.obj); got != want {
				t.Errorf("New() = %s, want %s", got, want)
			}
			if diff := cmp.Diff(sel, tc.kind.Selector(tc.obj)); diff != "" {
				t.Errorf("Selector (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKindSetGetRemove(t *testing.T) {
	t1 := metav1.NewTime(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	t2 := metav1.NewTime(t1.Add(time.Hour))
	t3 := metav1.NewTime(t1.Add(2 * time.Hour))
	available := cond{Type: "Available", Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
		Message: "owned by the workload's controller", LastTransitionTime: t1, LastUpdateTime: t1}
	progressing := cond{Type: "Progressing", Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable",
		Message: "also theirs", LastTransitionTime: t1, LastUpdateTime: t2}
	oursOld := cond{Type: condType, Status: corev1.ConditionFalse, Reason: v1alpha1.ReasonOverWarn,
		Message: "web-0 at 2Gi", LastTransitionTime: t1, LastUpdateTime: t2}
	newCond := Condition{Status: corev1.ConditionTrue, Reason: v1alpha1.ReasonWithinLimits, Message: "all fine",
		LastTransitionTime: t3, LastUpdateTime: t3}
	oursNew := cond{Type: condType, Status: newCond.Status, Reason: newCond.Reason, Message: newCond.Message,
		LastTransitionTime: t3, LastUpdateTime: t3}

	type op int
	const (
		set op = iota
		remove
	)
	cases := map[string]struct {
		before      []cond
		op          op
		after       []cond
		wantRemoved bool
	}{
		"Set with no conditions: ours alone": {op: set, after: []cond{oursNew}},
		"Set adds beside theirs, untouched": {op: set,
			before: []cond{available, progressing}, after: []cond{available, progressing, oursNew}},
		"Set replaces ours in place": {op: set,
			before: []cond{available, oursOld, progressing}, after: []cond{available, oursNew, progressing}},
		"Set replaces ours when alone": {op: set, before: []cond{oursOld}, after: []cond{oursNew}},
		"Remove removes only ours": {op: remove, wantRemoved: true,
			before: []cond{available, oursOld, progressing}, after: []cond{available, progressing}},
		"Remove ours when last": {op: remove, wantRemoved: true,
			before: []cond{available, progressing, oursOld}, after: []cond{available, progressing}},
		"Remove ours when alone": {op: remove, wantRemoved: true, before: []cond{oursOld}},
		"Remove without ours: unchanged": {op: remove,
			before: []cond{available, progressing}, after: []cond{available, progressing}},
		"Remove with no conditions": {op: remove},
	}
	for _, ka := range kindAdapters {
		// Only Deployment conditions have lastUpdateTime.
		norm := func(cs []cond) []cond {
			if ka.hasUpdateTime {
				return cs
			}
			var out []cond
			for _, c := range cs {
				c.LastUpdateTime = metav1.Time{}
				out = append(out, c)
			}
			return out
		}
		for name, tc := range cases {
			t.Run(ka.kind.Name+"/"+name, func(t *testing.T) {
				obj := ka.build(tc.before...)
				switch tc.op {
				case set:
					ka.kind.Set(obj, newCond)
				case remove:
					if got := ka.kind.Remove(obj); got != tc.wantRemoved {
						t.Errorf("Remove = %t, want %t", got, tc.wantRemoved)
					}
				}
				if diff := cmp.Diff(norm(tc.after), ka.read(obj), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("conditions (-want +got):\n%s", diff)
				}
			})
		}

		t.Run(ka.kind.Name+"/Get", func(t *testing.T) {
			// LastUpdateTime is not compared: Get is read back only for NextCondition, which
			// sets it afresh whenever it writes.
			ignoreUpdate := cmpopts.IgnoreFields(Condition{}, "LastUpdateTime")
			got, had := ka.kind.Get(ka.build(available, oursOld, progressing))
			want := Condition{Status: oursOld.Status, Reason: oursOld.Reason, Message: oursOld.Message, LastTransitionTime: t1}
			if diff := cmp.Diff(want, got, ignoreUpdate); diff != "" || !had {
				t.Errorf("Get with ours = %t (-want +got):\n%s", had, diff)
			}
			got, had = ka.kind.Get(ka.build(available, progressing))
			if diff := cmp.Diff(Condition{}, got); diff != "" || had {
				t.Errorf("Get without ours = %t (-want +got):\n%s", had, diff)
			}
			got, had = ka.kind.Get(ka.build())
			if had {
				t.Errorf("Get with no conditions = %+v, true; want false", got)
			}
			// Set then Get round-trips.
			obj := ka.build(available)
			ka.kind.Set(obj, newCond)
			got, had = ka.kind.Get(obj)
			if diff := cmp.Diff(newCond, got, ignoreUpdate); diff != "" || !had {
				t.Errorf("Get after Set = %t (-want +got):\n%s", had, diff)
			}
		})
	}
}
