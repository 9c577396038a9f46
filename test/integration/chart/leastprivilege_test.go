package chart

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/test/builders"
)

// The least-privilege release: its own name and namespace, so that its cluster-scoped objects
// do not meet the other tests'.
const (
	lpRelease   = "lp"
	lpNamespace = "layerkeeper-lp"
	lpFullname  = "lp-layerkeeper"
	// nodeNameExtra is the user extra a bound ServiceAccount token of a pod carries.
	nodeNameExtra = "authentication.kubernetes.io/node-name"
	appsNS        = "apps"
	teamA, teamB  = "team-a", "team-b"
)

// lpFixture is the chart installed for real (RBAC and admission policies in force) with the
// agent allowed to read Secrets in team-a only, and a few objects for the ServiceAccounts to
// act on.
type lpFixture struct {
	objs                  rendered
	controllerRole        *rbacv1.ClusterRole
	agentRole             *rbacv1.ClusterRole
	deploy                *appsv1.Deployment
	sts                   *appsv1.StatefulSet
	pod                   *corev1.Pod
	offloadA, offloadB    *v1alpha1.LayerOffload
	controllerSA, agentSA string
}

func installForLeastPrivilege(t *testing.T) *lpFixture {
	t.Helper()
	c := requireAPI(t)
	ctx := context.Background()
	f := &lpFixture{controllerSA: lpFullname + "-controller", agentSA: lpFullname + "-agent"}
	f.objs = render(t, lpRelease, lpNamespace, map[string]any{
		"s3": map[string]any{"credentialsSecretNamespaces": []any{teamA}},
	})
	ensureNamespaces(t, c, lpNamespace, teamA, teamB, appsNS)
	applyCRDs(t, c, f.objs)
	for _, u := range f.objs {
		if u.GetKind() == "CustomResourceDefinition" {
			continue
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), fieldOwner, client.ForceOwnership); err != nil {
			t.Fatalf("applying %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
	f.controllerRole = into[rbacv1.ClusterRole](t, f.objs, "ClusterRole", "", f.controllerSA)
	f.agentRole = into[rbacv1.ClusterRole](t, f.objs, "ClusterRole", "", f.agentSA)

	for _, ns := range []string{teamA, teamB} {
		create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3-credentials", Namespace: ns},
			StringData: map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}})
	}
	lbls := map[string]string{"app": "web"}
	f.deploy = builders.Deployment("web", appsNS, lbls, "web")
	create(t, c, f.deploy)
	f.sts = builders.StatefulSet("db", appsNS, map[string]string{"app": "db"}, "db")
	create(t, c, f.sts)
	rs := builders.ReplicaSetFor(f.deploy, "5d8f")
	create(t, c, rs)
	f.pod = builders.PodFor(rs, "ReplicaSet", "web-5d8f-abcde", "node-a", rs.Spec.Template)
	create(t, c, f.pod)
	create(t, c, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}})
	f.offloadA = offload("web-node-a", "node-a")
	create(t, c, f.offloadA)
	f.offloadB = offload("web-node-b", "node-b")
	create(t, c, f.offloadB)

	// The agent's RBAC markers for LayerOffloads (get/list/watch, patch status) are being
	// added with the offload work; until config/rbac/agent/role.yaml has them, grant them here
	// so that the admission policy on LayerOffloads is proven either way. The policy, not RBAC,
	// must be what stops the agent writing another node's offload.
	create(t, c, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "lp-test-agent-offloads"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"layeroffloads"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"layeroffloads/status"}, Verbs: []string{"get", "patch"}},
		}})
	create(t, c, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "lp-test-agent-offloads"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "lp-test-agent-offloads"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: f.agentSA, Namespace: lpNamespace}}})
	return f
}

func TestLeastPrivilegeAgent(t *testing.T) {
	f := installForLeastPrivilege(t)
	ctx := context.Background()
	agent := impersonate(t, lpNamespace, f.agentSA, "node-a")

	t.Run("writes its own node's report and its status", func(t *testing.T) {
		eventually(t, "apply NodeLayerReport node-a", func() error { return applyReport(ctx, agent, "node-a") })
		eventually(t, "apply NodeLayerReport node-a status", func() error { return applyReportStatus(ctx, agent, "node-a") })
	})
	t.Run("reads pods, policies, its node and the Secrets of listed namespaces", func(t *testing.T) {
		eventually(t, "list pods", func() error { return agent.List(ctx, &corev1.PodList{}) })
		eventually(t, "get pod", func() error { return agent.Get(ctx, client.ObjectKeyFromObject(f.pod), &corev1.Pod{}) })
		eventually(t, "list layerpolicies", func() error { return agent.List(ctx, &v1alpha1.LayerPolicyList{}) })
		eventually(t, "get node", func() error { return agent.Get(ctx, client.ObjectKey{Name: "node-a"}, &corev1.Node{}) })
		eventually(t, "get Secret in team-a", func() error {
			return agent.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "s3-credentials"}, &corev1.Secret{})
		})
	})
	t.Run("writes the status of offloads addressed to its node", func(t *testing.T) {
		eventually(t, "patch LayerOffload status on node-a", func() error { return patchOffloadStatus(ctx, agent, f.offloadA) })
	})

	// Denied by the admission policies: RBAC lets the agent write any report and any
	// offload's status; only the node name in its token stops it.
	t.Run("cannot write another node's report", func(t *testing.T) {
		wantDenied(t, "apply NodeLayerReport node-b",
			func() error { return applyReport(ctx, agent, "node-b") },
			"may write only NodeLayerReport node-a, not node-b",
			func() { _ = requireAPI(t).Delete(ctx, report("node-b")) })
		create(t, requireAPI(t), report("node-c"))
		wantDenied(t, "apply NodeLayerReport node-c status",
			func() error { return applyReportStatus(ctx, agent, "node-c") },
			"may write only NodeLayerReport node-a, not node-c", nil)
	})
	t.Run("cannot write the status of another node's offload", func(t *testing.T) {
		wantDenied(t, "patch LayerOffload status on node-b",
			func() error { return patchOffloadStatus(ctx, agent, f.offloadB) },
			"may write only LayerOffloads addressed to node-a, not apps/web-node-b", nil)
	})
	t.Run("cannot write without a node name in its credentials", func(t *testing.T) {
		anywhere := impersonate(t, lpNamespace, f.agentSA, "")
		wantDenied(t, "apply NodeLayerReport node-a without a node name",
			func() error { return applyReport(ctx, anywhere, "node-a") },
			"credentials name no node", nil)
	})

	// Denied by RBAC.
	t.Run("no access to workloads, other Secrets, offload orders", func(t *testing.T) {
		wantForbidden(t, "patch Deployment", agent.Patch(ctx, f.deploy, annotationPatch()))
		wantForbidden(t, "patch Deployment status", agent.Status().Patch(ctx, f.deploy, annotationPatch()))
		wantForbidden(t, "delete pod", agent.Delete(ctx, f.pod))
		wantForbidden(t, "get Secret in team-b", agent.Get(ctx, client.ObjectKey{Namespace: teamB, Name: "s3-credentials"}, &corev1.Secret{}))
		wantForbidden(t, "list Secrets in team-a", agent.List(ctx, &corev1.SecretList{}, client.InNamespace(teamA)))
		wantForbidden(t, "create LayerOffload", agent.Create(ctx, offload("by-agent", "node-a")))
		wantForbidden(t, "delete NodeLayerReport", agent.Delete(ctx, report("node-a")))
		wantForbidden(t, "patch LayerPolicy", agent.Patch(ctx, builders.MakeLayerPolicy("p", appsNS).Obj(), annotationPatch()))
	})
	if grants(f.agentRole, "", "secrets", "get") {
		t.Errorf("the agent's ClusterRole grants Secrets cluster-wide: %+v", f.agentRole.Rules)
	}
}

func TestLeastPrivilegeController(t *testing.T) {
	f := installForLeastPrivilege(t)
	ctx := context.Background()
	ctrl := impersonate(t, lpNamespace, f.controllerSA, "")

	t.Run("annotates pods and workloads and sets workload conditions", func(t *testing.T) {
		eventually(t, "patch Deployment annotations", func() error { return ctrl.Patch(ctx, f.deploy.DeepCopy(), annotationPatch()) })
		eventually(t, "patch StatefulSet annotations", func() error { return ctrl.Patch(ctx, f.sts.DeepCopy(), annotationPatch()) })
		eventually(t, "patch pod annotations", func() error { return ctrl.Patch(ctx, f.pod.DeepCopy(), annotationPatch()) })
		eventually(t, "patch Deployment status", func() error {
			cond := fmt.Sprintf(`{"status":{"conditions":[{"type":%q,"status":"False","reason":"OverLimit","message":"m","lastUpdateTime":"2026-01-01T00:00:00Z","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`, v1alpha1.ConditionWritableLayerWithinLimits)
			return ctrl.Status().Patch(ctx, f.deploy.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(cond)))
		})
	})
	t.Run("reads policies, reports and the Secrets policies name", func(t *testing.T) {
		eventually(t, "list LayerPolicies", func() error { return ctrl.List(ctx, &v1alpha1.LayerPolicyList{}) })
		eventually(t, "list NodeLayerReports", func() error { return ctrl.List(ctx, &v1alpha1.NodeLayerReportList{}) })
		eventually(t, "get Secret", func() error {
			return ctrl.Get(ctx, client.ObjectKey{Namespace: teamB, Name: "s3-credentials"}, &corev1.Secret{})
		})
	})
	t.Run("emits events", func(t *testing.T) {
		eventually(t, "create Event", func() error {
			return ctrl.Create(ctx, &eventsv1.Event{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Namespace: appsNS},
				EventTime:  metav1.NowMicro(), ReportingController: "layerkeeper.dev/controller", ReportingInstance: "test",
				Action: "Evaluate", Reason: "WritableLayerOverLimit", Type: corev1.EventTypeWarning, Note: "over the limit",
				Regarding: corev1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Namespace: appsNS, Name: f.deploy.Name},
			})
		})
	})
	t.Run("holds its leader-election Lease", func(t *testing.T) {
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "layerkeeper-controller.layerkeeper.dev", Namespace: lpNamespace},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("controller-0"), LeaseDurationSeconds: ptr.To[int32](15)}}
		eventually(t, "create Lease", func() error { return ctrl.Create(ctx, lease) })
		lease.Spec.HolderIdentity = ptr.To("controller-1")
		eventually(t, "update Lease", func() error { return ctrl.Update(ctx, lease) })
		wantForbidden(t, "create Lease in kube-system", ctrl.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "kube-system"}}))
	})

	// Rights the remediation and offload work adds to the controller's markers. Each is proven
	// against the API server as soon as config/rbac/controller/role.yaml grants it.
	pending := []struct {
		what                  string
		group, resource, verb string
		do                    func() error
	}{
		{"evict a pod (respects PodDisruptionBudgets)", "", "pods/eviction", "create", func() error {
			p := builders.PodFor(f.deploy, "Deployment", "evictable", "node-a", f.deploy.Spec.Template)
			create(t, requireAPI(t), p)
			return ctrl.SubResource("eviction").Create(ctx, p, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}})
		}},
		{"order an offload", v1alpha1.GroupVersion.Group, "layeroffloads", "create", func() error {
			return ctrl.Create(ctx, offload("by-controller", "node-a"))
		}},
		{"garbage-collect an offload", v1alpha1.GroupVersion.Group, "layeroffloads", "delete", func() error {
			return ctrl.Delete(ctx, f.offloadB.DeepCopy())
		}},
	}
	for _, p := range pending {
		t.Run(p.what, func(t *testing.T) {
			if !grants(f.controllerRole, p.group, p.resource, p.verb) {
				t.Skipf("not granted yet by config/rbac/controller/role.yaml (%s %s/%s): the RBAC marker is pending", p.verb, p.group, p.resource)
			}
			eventually(t, p.what, p.do)
		})
	}

	t.Run("nothing more", func(t *testing.T) {
		wantForbidden(t, "list Secrets", ctrl.List(ctx, &corev1.SecretList{}, client.InNamespace(teamA)))
		wantForbidden(t, "delete node", ctrl.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}))
		wantForbidden(t, "create pod", ctrl.Create(ctx, builders.PodFor(f.deploy, "Deployment", "by-controller", "node-a", f.deploy.Spec.Template)))
		wantForbidden(t, "delete Deployment", ctrl.Delete(ctx, f.deploy.DeepCopy()))
		wantForbidden(t, "apply NodeLayerReport", applyReport(ctx, ctrl, "node-a"))
		if allowed := accessReview(t, ctrl, authorizationv1.ResourceAttributes{Namespace: appsNS, Verb: "create", Resource: "pods", Subresource: "exec"}); allowed {
			t.Error("the controller may exec into pods")
		}
	})
	for _, rule := range append(f.controllerRole.Rules, f.agentRole.Rules...) {
		if slices.Contains(rule.Verbs, "*") || slices.Contains(rule.Resources, "*") || slices.Contains(rule.APIGroups, "*") {
			t.Errorf("wildcard rule %+v", rule)
		}
	}
}

// impersonate returns a client acting as a ServiceAccount, as its pod's bound token would: with
// the node name the token carries when node is set.
func impersonate(t *testing.T, namespace, name, node string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(apiServer.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + namespace + ":" + name,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
	if node != "" {
		cfg.Impersonate.Extra = map[string][]string{nodeNameExtra: {node}}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// eventually retries an action the ServiceAccount must be allowed, while the API server's
// RBAC caches catch up with the objects just applied.
func eventually(t *testing.T, what string, do func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
		last = do()
		return last == nil || !apierrors.IsForbidden(last), nil
	})
	if last != nil {
		t.Errorf("%s: %v", what, last)
	} else if err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// wantDenied retries an action until the admission policy, which the API server loads
// asynchronously, denies it with the message; undo removes what an early success wrote.
func wantDenied(t *testing.T, what string, do func() error, message string, undo func()) {
	t.Helper()
	var last error
	_ = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		last = do()
		if last == nil && undo != nil {
			undo()
		}
		return last != nil && strings.Contains(last.Error(), message), nil
	})
	switch {
	case last == nil:
		t.Errorf("%s: allowed, want denied by the admission policy (%q)", what, message)
	case !apierrors.IsForbidden(last) || !strings.Contains(last.Error(), message):
		t.Errorf("%s: %v, want Forbidden by the admission policy (%q)", what, last, message)
	}
}

func wantForbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s: got %v, want Forbidden", what, err)
	}
}

// accessReview asks the API server's authorizer whether the client's user may do something.
func accessReview(t *testing.T, c client.Client, attrs authorizationv1.ResourceAttributes) bool {
	t.Helper()
	r := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs}}
	if err := c.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r.Status.Allowed
}

// grants reports whether a role has a rule for the verb on group/resource.
func grants(role *rbacv1.ClusterRole, group, resource, verb string) bool {
	for _, r := range role.Rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) && len(r.ResourceNames) == 0 {
			return true
		}
	}
	return false
}

func report(node string) *v1alpha1.NodeLayerReport {
	return &v1alpha1.NodeLayerReport{ObjectMeta: metav1.ObjectMeta{Name: node}}
}

// applyReport creates or updates a node's report with server-side apply, as the agent does.
func applyReport(ctx context.Context, c client.Client, node string) error {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("NodeLayerReport"))
	u.SetName(node)
	u.SetLabels(map[string]string{"layerkeeper.dev/node": node})
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("layerkeeper-agent"), client.ForceOwnership)
}

// applyReportStatus applies a node's report status, as the agent does.
func applyReportStatus(ctx context.Context, c client.Client, node string) error {
	st, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&builders.MakeReport(node, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 100<<30, 40<<30).Obj().Status)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: map[string]any{"status": st}}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("NodeLayerReport"))
	u.SetName(node)
	return c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("layerkeeper-agent"), client.ForceOwnership)
}

func patchOffloadStatus(ctx context.Context, c client.Client, o *v1alpha1.LayerOffload) error {
	return c.Status().Patch(ctx, o.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"status":{"phase":"Running","attempts":1}}`)))
}

func annotationPatch() client.Patch {
	return client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"layerkeeper.dev/state":"warn"}}}`))
}

// offload is a valid LayerOffload of the web pod's container, addressed to a node.
func offload(name, node string) *v1alpha1.LayerOffload {
	return &v1alpha1.LayerOffload{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: appsNS},
		Spec: v1alpha1.LayerOffloadSpec{
			PolicyName: "p", NodeName: node, PodName: "web-5d8f-abcde", PodUID: "uid-1",
			ContainerName: "web", ContainerID: "abc", Reason: v1alpha1.OffloadReasonThreshold,
			Paths:  []v1alpha1.HotPath{{Path: "/var/log/web"}},
			Target: v1alpha1.S3Target{Bucket: "logs", Prefix: "apps/web"},
		},
	}
}

// create creates an object as the administrator, tolerating one left by an earlier test.
func create(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), obj); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
	if obj.GetUID() == "" { // already there: read it, for its UID and resourceVersion
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
	}
}
