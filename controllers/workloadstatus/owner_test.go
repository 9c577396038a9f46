package workloadstatus_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/layerkeeper/layerkeeper/controllers/app"
	"github.com/layerkeeper/layerkeeper/controllers/workloadstatus"
	"github.com/layerkeeper/layerkeeper/test/builders"
)

// ownerFixture is a namespace with one workload of each kind, their pods, and ReplicaSets
// in the states the owner lookup must tell apart. The fake client is enough here: the
// lookups are plain Gets by name.
type ownerFixture struct {
	c                                                client.Client
	deploy                                           *appsv1.Deployment
	podOfDeploy, podOfRecreatedRS, podOfMissingRS    *corev1.Pod
	podOfOrphanRS, podOfForeignRS, podOfRSElsewhere  *corev1.Pod
	sts                                              *appsv1.StatefulSet
	podOfSTS, podOfDS, podOfJob, barePod, podNonCtrl *corev1.Pod
	ds                                               *appsv1.DaemonSet
}

func withUID[T metav1.Object](o T, uid string) T {
	o.SetUID(types.UID(uid))
	return o
}

func newOwnerFixture(t *testing.T) *ownerFixture {
	t.Helper()
	const ns, node = "shop", "node-1"
	lbls := map[string]string{"app": "web"}
	f := &ownerFixture{}

	f.deploy = withUID(builders.Deployment("web", ns, lbls, "app"), "deploy-uid")
	rs := withUID(builders.ReplicaSetFor(f.deploy, "7d9f8c"), "rs-uid")
	f.podOfDeploy = builders.PodFor(rs, "ReplicaSet", "web-7d9f8c-abcde", node, rs.Spec.Template)

	// A ReplicaSet deleted and recreated under the same name: the pod's reference is to the
	// old one.
	recreated := withUID(builders.ReplicaSetFor(f.deploy, "1a2b3c"), "rs-new-uid")
	f.podOfRecreatedRS = builders.PodFor(withUID(recreated.DeepCopy(), "rs-old-uid"), "ReplicaSet", "web-1a2b3c-xxxxx", node, recreated.Spec.Template)

	gone := withUID(builders.ReplicaSetFor(f.deploy, "gone00"), "rs-gone-uid")
	f.podOfMissingRS = builders.PodFor(gone, "ReplicaSet", "web-gone00-yyyyy", node, gone.Spec.Template)

	orphan := withUID(builders.ReplicaSetFor(f.deploy, "orphan"), "rs-orphan-uid")
	orphan.OwnerReferences = nil
	f.podOfOrphanRS = builders.PodFor(orphan, "ReplicaSet", "web-orphan-zzzzz", node, orphan.Spec.Template)

	// A ReplicaSet controlled by something other than a Deployment (an Argo Rollout).
	foreign := withUID(builders.ReplicaSetFor(f.deploy, "rollout"), "rs-rollout-uid")
	foreign.OwnerReferences = []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout",
		Name: "canary", UID: "rollout-uid", Controller: ptr.To(true)}}
	f.podOfForeignRS = builders.PodFor(foreign, "ReplicaSet", "web-rollout-aaaaa", node, foreign.Spec.Template)

	// The pod's ReplicaSet name exists only in another namespace.
	elsewhere := withUID(builders.ReplicaSetFor(builders.Deployment("web", "other", lbls, "app"), "ffffff"), "rs-elsewhere-uid")
	f.podOfRSElsewhere = builders.PodFor(elsewhere, "ReplicaSet", "web-ffffff-bbbbb", node, elsewhere.Spec.Template)
	f.podOfRSElsewhere.Namespace = ns

	f.sts = withUID(builders.StatefulSet("db", ns, map[string]string{"app": "db"}, "postgres"), "sts-uid")
	f.podOfSTS = builders.PodFor(f.sts, "StatefulSet", "db-0", node, f.sts.Spec.Template)

	f.ds = withUID(&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns}}, "ds-uid")
	f.podOfDS = builders.PodFor(f.ds, "DaemonSet", "agent-x1y2z", node, builders.PodTemplate(map[string]string{"app": "agent"}, "agent"))

	job := withUID(&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "migrate", Namespace: ns}}, "job-uid")
	f.podOfJob = builders.PodFor(job, "", "migrate-q8r7s", node, builders.PodTemplate(map[string]string{"job": "migrate"}, "migrate"))
	f.podOfJob.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(job, batchv1.SchemeGroupVersion.WithKind("Job"))}

	f.barePod = builders.PodFor(&metav1.ObjectMeta{Namespace: ns}, "", "debug", node, builders.PodTemplate(nil, "sh"))

	// Owned, but not controlled.
	f.podNonCtrl = builders.PodFor(&metav1.ObjectMeta{Namespace: ns}, "", "adopted", node, builders.PodTemplate(nil, "sh"))
	f.podNonCtrl.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID}}

	f.c = fake.NewClientBuilder().WithScheme(app.NewScheme()).
		WithObjects(f.deploy, rs, recreated, orphan, foreign, elsewhere, f.sts, f.ds, job).Build()
	return f
}

func TestOwner(t *testing.T) {
	f := newOwnerFixture(t)
	type owner struct{ Kind, Name string }
	cases := map[string]struct {
		pod  *corev1.Pod
		want owner
	}{
		"pod of a Deployment, through its ReplicaSet": {f.podOfDeploy, owner{"Deployment", "web"}},
		"ReplicaSet recreated under the same name (UID mismatch)": {f.podOfRecreatedRS,
			owner{"ReplicaSet", "web-1a2b3c"}},
		"ReplicaSet not found":                      {f.podOfMissingRS, owner{"ReplicaSet", "web-gone00"}},
		"ReplicaSet without controller":             {f.podOfOrphanRS, owner{"ReplicaSet", "web-orphan"}},
		"ReplicaSet controlled by a non-Deployment": {f.podOfForeignRS, owner{"ReplicaSet", "web-rollout"}},
		"ReplicaSet only in another namespace":      {f.podOfRSElsewhere, owner{"ReplicaSet", "web-ffffff"}},
		"StatefulSet":                               {f.podOfSTS, owner{"StatefulSet", "db"}},
		"DaemonSet":                                 {f.podOfDS, owner{"DaemonSet", "agent"}},
		"Job":                                       {f.podOfJob, owner{"Job", "migrate"}},
		"bare pod: itself":                          {f.barePod, owner{"Pod", "debug"}},
		"owner reference without controller: bare":  {f.podNonCtrl, owner{"Pod", "adopted"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			kind, n := workloadstatus.Owner(context.Background(), f.c, tc.pod)
			if diff := cmp.Diff(tc.want, owner{kind, n}); diff != "" {
				t.Errorf("Owner (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOwnerName(t *testing.T) {
	f := newOwnerFixture(t)
	type result struct {
		Name string
		OK   bool
	}
	cases := map[string]struct {
		pod  *corev1.Pod
		kind string
		want result
	}{
		"Deployment pod as Deployment":                {f.podOfDeploy, "Deployment", result{"web", true}},
		"Deployment pod as ReplicaSet":                {f.podOfDeploy, "ReplicaSet", result{"web", false}},
		"Deployment pod as StatefulSet":               {f.podOfDeploy, "StatefulSet", result{"web", false}},
		"pod of a recreated ReplicaSet as Deployment": {f.podOfRecreatedRS, "Deployment", result{"web-1a2b3c", false}},
		"StatefulSet pod as StatefulSet":              {f.podOfSTS, "StatefulSet", result{"db", true}},
		"StatefulSet pod as Deployment":               {f.podOfSTS, "Deployment", result{"db", false}},
		"DaemonSet pod as DaemonSet":                  {f.podOfDS, "DaemonSet", result{"agent", true}},
		"Job pod as Deployment":                       {f.podOfJob, "Deployment", result{"migrate", false}},
		"bare pod as Deployment":                      {f.barePod, "Deployment", result{"debug", false}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			n, ok := workloadstatus.OwnerName(context.Background(), f.c, tc.pod, tc.kind)
			if diff := cmp.Diff(tc.want, result{n, ok}); diff != "" {
				t.Errorf("OwnerName(%s) (-want +got):\n%s", tc.kind, diff)
			}
		})
	}
}

// TestKindOwns checks each kind's Owns against the same fixture: a Deployment owns pods only
// through a ReplicaSet it controls whose UID matches the pod's reference.
func TestKindOwns(t *testing.T) {
	f := newOwnerFixture(t)
	kinds := map[string]workloadstatus.Kind{}
	for _, k := range workloadstatus.Kinds {
		kinds[k.Name] = k
	}
	otherDeploy := withUID(builders.Deployment("web", "shop", nil), "another-deploy-uid")
	cases := map[string]struct {
		kind string
		w    client.Object
		pod  *corev1.Pod
		want bool
	}{
		"Deployment owns its pod":                  {"Deployment", f.deploy, f.podOfDeploy, true},
		"same-named Deployment with another UID":   {"Deployment", otherDeploy, f.podOfDeploy, false},
		"Deployment, recreated ReplicaSet":         {"Deployment", f.deploy, f.podOfRecreatedRS, false},
		"Deployment, missing ReplicaSet":           {"Deployment", f.deploy, f.podOfMissingRS, false},
		"Deployment, orphaned ReplicaSet":          {"Deployment", f.deploy, f.podOfOrphanRS, false},
		"Deployment, StatefulSet pod":              {"Deployment", f.deploy, f.podOfSTS, false},
		"Deployment, bare pod":                     {"Deployment", f.deploy, f.barePod, false},
		"Deployment, reference without controller": {"Deployment", f.deploy, f.podNonCtrl, false},
		"StatefulSet owns its pod":                 {"StatefulSet", f.sts, f.podOfSTS, true},
		"StatefulSet, Deployment pod":              {"StatefulSet", f.sts, f.podOfDeploy, false},
		"StatefulSet, bare pod":                    {"StatefulSet", f.sts, f.barePod, false},
		"DaemonSet owns its pod":                   {"DaemonSet", f.ds, f.podOfDS, true},
		"DaemonSet, StatefulSet pod":               {"DaemonSet", f.ds, f.podOfSTS, false},
		"DaemonSet, bare pod":                      {"DaemonSet", f.ds, f.barePod, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := kinds[tc.kind].Owns(context.Background(), f.c, tc.w, tc.pod); got != tc.want {
				t.Errorf("%s.Owns(%s) = %t, want %t", tc.kind, tc.pod.Name, got, tc.want)
			}
		})
	}
}
