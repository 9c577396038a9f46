package chart

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const fieldOwner = client.FieldOwner("layerkeeper-chart-test")

// TestServerSideDryRun applies every object the chart renders, with default values and with
// every option on, to the real API server with a server-side dry run: each must pass the
// server's schema, validation (RBAC escalation checks, CEL of the admission policies, Pod
// security fields) and admission. CRDs are applied for real first, as `helm install` does.
func TestServerSideDryRun(t *testing.T) {
	c := requireAPI(t)
	installServiceMonitorCRD(t, c)
	for _, tc := range []struct {
		name, release, namespace string
		values                   map[string]any
	}{
		{"defaults", "dry", "dry-run-defaults", nil},
		{"every option", "dry", "dry-run-options", everyOption()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, tc.release, tc.namespace, tc.values)
			ensureNamespaces(t, c, append(namespacesOf(objs), tc.namespace)...)
			applyCRDs(t, c, objs)
			for _, u := range objs {
				if u.GetKind() == "CustomResourceDefinition" {
					continue
				}
				if err := c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u), client.DryRunAll, fieldOwner, client.ForceOwnership); err != nil {
					t.Errorf("server-side dry run of %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
				}
			}
		})
	}
}

// applyCRDs applies the rendered CRDs for real and waits until they are established.
func applyCRDs(t *testing.T, c client.Client, objs rendered) {
	t.Helper()
	ctx := context.Background()
	for _, u := range objs.ofKind("CustomResourceDefinition") {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), fieldOwner, client.ForceOwnership); err != nil {
			t.Fatalf("applying CRD %s: %v", u.GetName(), err)
		}
		waitEstablished(t, c, u.GetName())
	}
}

func waitEstablished(t *testing.T, c client.Client, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not established: %v", name, err)
	}
}

// installServiceMonitorCRD installs a stand-in for the Prometheus Operator's ServiceMonitor CRD,
// which envtest does not have. Its schema is open (the real one is thousands of lines), so the
// dry run proves the group, version, kind and scope are right, and the render test checks the
// fields.
func installServiceMonitorCRD(t *testing.T, c client.Client) {
	t.Helper()
	preserve := true
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "servicemonitors.monitoring.coreos.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "monitoring.coreos.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "servicemonitors", Singular: "servicemonitor", Kind: "ServiceMonitor", ListKind: "ServiceMonitorList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", XPreserveUnknownFields: &preserve, Required: []string{"selector", "endpoints"},
							Properties: map[string]apiextensionsv1.JSONSchemaProps{
								"selector":  {Type: "object", XPreserveUnknownFields: &preserve},
								"endpoints": {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: &preserve}}},
							}},
					},
				}},
			}},
		},
	}
	if err := c.Create(context.Background(), crd); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating the ServiceMonitor CRD: %v", err)
	}
	waitEstablished(t, c, crd.Name)
}

// namespacesOf lists the namespaces the objects go into.
func namespacesOf(objs rendered) []string {
	var out []string
	seen := map[string]bool{}
	for _, u := range objs {
		if ns := u.GetNamespace(); ns != "" && !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	return out
}

func ensureNamespaces(t *testing.T, c client.Client, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating namespace %s: %v", n, err)
		}
	}
}
