package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/layerkeeper/layerkeeper/test/framework"
)

const (
	release   = "lk"
	namespace = "layerkeeper-system"
	fullname  = "lk-layerkeeper"
)

var (
	controllerName = fullname + "-controller"
	agentName      = fullname + "-agent"
	// clusterScoped are the kinds the chart renders without a namespace.
	clusterScoped = []string{"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
)

func TestLint(t *testing.T) {
	helm(t, "lint", "--strict", chartDir)
	helm(t, "lint", "--strict", chartDir, "-f", valuesFile(t, everyOption()))
}

// everyOption turns on or changes every optional part of the chart.
func everyOption() map[string]any {
	return map[string]any{
		"crds":             map[string]any{"keep": false},
		"image":            map[string]any{"repository": "registry.example/layerkeeper", "tag": "v9.9.9", "pullPolicy": "Always"},
		"metrics":          map[string]any{"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}}},
		"grafanaDashboard": map[string]any{"enabled": true},
		"controller": map[string]any{
			"replicas":       3,
			"extraArgs":      []any{"--stale-after=10m"},
			"nodeSelector":   map[string]any{"node-role.kubernetes.io/control-plane": ""},
			"serviceAccount": map[string]any{"annotations": map[string]any{"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/controller"}},
		},
		"agent": map[string]any{
			"privileged":        true,
			"cpuLimit":          0.25,
			"priorityClassName": "",
			"extraArgs":         []any{"--interval=1m"},
			"containerdSocket":  "/run/k3s/containerd/containerd.sock",
			"tolerations":       []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}},
			"serviceAccount":    map[string]any{"annotations": map[string]any{"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/agent"}},
		},
		"s3": map[string]any{
			"existingSecret":              "layerkeeper-s3",
			"region":                      "eu-west-1",
			"endpoint":                    "https://s3.example",
			"credentialsSecretNamespaces": []any{"team-a", "team-b"},
			"credentialsSecretNames":      []any{"s3-credentials"},
		},
	}
}

func chartAppVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.AppVersion
}

// readConfig decodes a file of config/ (the kustomize source of truth).
func readConfig[T any](t *testing.T, path string) *T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(framework.RepoRoot(), path))
	if err != nil {
		t.Fatal(err)
	}
	obj := new(T)
	if err := yaml.UnmarshalStrict(b, obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return obj
}

func TestRenderDefaults(t *testing.T) {
	r := render(t, release, namespace, nil)

	t.Run("objects", func(t *testing.T) {
		want := map[string]int{
			"CustomResourceDefinition": 3, "ServiceAccount": 2, "ClusterRole": 2, "ClusterRoleBinding": 2,
			"Role": 1, "RoleBinding": 1, "Deployment": 1, "PodDisruptionBudget": 1, "DaemonSet": 1,
			"Service": 2, "ValidatingAdmissionPolicy": 2, "ValidatingAdmissionPolicyBinding": 2,
		}
		if diff := cmp.Diff(want, r.kinds()); diff != "" {
			t.Errorf("rendered kinds (-want +got):\n%s", diff)
		}
		for _, u := range r {
			wantNS := namespace
			if slices.Contains(clusterScoped, u.GetKind()) {
				wantNS = ""
			}
			if u.GetNamespace() != wantNS {
				t.Errorf("%s %s: namespace %q, want %q", u.GetKind(), u.GetName(), u.GetNamespace(), wantNS)
			}
			l := u.GetLabels()
			if l["app.kubernetes.io/instance"] != release || l["app.kubernetes.io/name"] != "layerkeeper" || l["app.kubernetes.io/managed-by"] != "Helm" {
				t.Errorf("%s %s: labels %v lack the chart's", u.GetKind(), u.GetName(), l)
			}
		}
	})

	t.Run("controller", func(t *testing.T) {
		d := into[appsv1.Deployment](t, r, "Deployment", namespace, controllerName)
		if *d.Spec.Replicas != 2 {
			t.Errorf("replicas = %d, want 2", *d.Spec.Replicas)
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("selector %v does not select the pod template's labels %v (%v)", d.Spec.Selector, d.Spec.Template.Labels, err)
		}
		pod := d.Spec.Template.Spec
		if pod.ServiceAccountName != controllerName {
			t.Errorf("serviceAccountName = %q, want %q", pod.ServiceAccountName, controllerName)
		}
		if pod.HostPID || pod.HostNetwork || pod.HostIPC || len(pod.Volumes) != 0 {
			t.Errorf("the controller has host access: hostPID %v hostNetwork %v hostIPC %v volumes %v", pod.HostPID, pod.HostNetwork, pod.HostIPC, pod.Volumes)
		}
		if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("pod securityContext %+v: want runAsNonRoot", psc)
		}
		c := onlyContainer(t, pod)
		if want := "ghcr.io/layerkeeper/layerkeeper:" + chartAppVersion(t); c.Image != want {
			t.Errorf("image = %q, want %q", c.Image, want)
		}
		if diff := cmp.Diff([]string{"controller", "--leader-elect", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"}, c.Args); diff != "" {
			t.Errorf("args (-want +got):\n%s", diff)
		}
		sc := c.SecurityContext
		if sc == nil || !isTrue(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			isTrue(sc.Privileged) || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("controller container securityContext %+v: want read-only root, no escalation, every capability dropped", sc)
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("controller container lacks probes")
		}

		pdb := into[policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget", namespace, controllerName)
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
			t.Errorf("PDB minAvailable = %v, want 1", pdb.Spec.MinAvailable)
		}
		if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("PDB selector %v does not select the controller's pods", pdb.Spec.Selector)
		}
	})

	t.Run("agent", func(t *testing.T) {
		ds := into[appsv1.DaemonSet](t, r, "DaemonSet", namespace, agentName)
		pod := ds.Spec.Template.Spec
		if !pod.HostPID {
			t.Error("agent: hostPID = false")
		}
		if pod.ServiceAccountName != agentName {
			t.Errorf("serviceAccountName = %q, want %q", pod.ServiceAccountName, agentName)
		}
		if pod.PriorityClassName != "system-node-critical" {
			t.Errorf("priorityClassName = %q", pod.PriorityClassName)
		}
		if diff := cmp.Diff([]corev1.Toleration{{Operator: corev1.TolerationOpExists}}, pod.Tolerations); diff != "" {
			t.Errorf("tolerations (-want +got):\n%s", diff)
		}
		if len(pod.Volumes) != 1 || pod.Volumes[0].HostPath == nil || pod.Volumes[0].HostPath.Path != "/" {
			t.Fatalf("volumes = %+v, want the host's / only", pod.Volumes)
		}
		c := onlyContainer(t, pod)
		hostPC := corev1.MountPropagationHostToContainer
		wantMounts := []corev1.VolumeMount{{Name: pod.Volumes[0].Name, MountPath: "/host", ReadOnly: true, MountPropagation: &hostPC}}
		if diff := cmp.Diff(wantMounts, c.VolumeMounts); diff != "" {
			t.Errorf("volumeMounts (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"agent", "--host-root=/host", "--cpu-limit=0.5", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"}, c.Args); diff != "" {
			t.Errorf("args (-want +got):\n%s", diff)
		}
		if len(c.Env) != 1 || c.Env[0].Name != "NODE_NAME" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
			t.Errorf("env = %+v, want NODE_NAME from spec.nodeName only", c.Env)
		}
		if len(c.EnvFrom) != 0 {
			t.Errorf("envFrom = %+v, want none by default", c.EnvFrom)
		}
		sc := c.SecurityContext
		if sc == nil || isTrue(sc.Privileged) || !isTrue(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Fatalf("agent securityContext %+v: want unprivileged, read-only root, no escalation", sc)
		}
		if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
			t.Errorf("agent runAsUser = %v, want 0", sc.RunAsUser)
		}
		wantCaps := &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"DAC_READ_SEARCH", "SYS_PTRACE", "DAC_OVERRIDE", "FOWNER"}}
		if diff := cmp.Diff(wantCaps, sc.Capabilities); diff != "" {
			t.Errorf("capabilities (-want +got):\n%s", diff)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("agent resources = %+v, want requests and limits", c.Resources)
		}
	})

	t.Run("RBAC is config's", func(t *testing.T) {
		for _, component := range []string{"controller", "agent"} {
			name := fullname + "-" + component
			got := into[rbacv1.ClusterRole](t, r, "ClusterRole", "", name)
			want := readConfig[rbacv1.ClusterRole](t, "config/rbac/"+component+"/role.yaml")
			if diff := cmp.Diff(want.Rules, got.Rules); diff != "" {
				t.Errorf("ClusterRole %s differs from config/rbac/%s/role.yaml; run `make manifests chart` (-config +chart):\n%s", name, component, diff)
			}
			b := into[rbacv1.ClusterRoleBinding](t, r, "ClusterRoleBinding", "", name)
			wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: namespace}}
			if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != name || !cmp.Equal(wantSubjects, b.Subjects) {
				t.Errorf("ClusterRoleBinding %s: roleRef %+v subjects %+v", name, b.RoleRef, b.Subjects)
			}
			into[corev1.ServiceAccount](t, r, "ServiceAccount", namespace, name)
		}
		le := into[rbacv1.Role](t, r, "Role", namespace, controllerName+"-leader-election")
		want := readConfig[rbacv1.Role](t, "config/rbac/leader_election_role.yaml")
		if diff := cmp.Diff(want.Rules, le.Rules); diff != "" {
			t.Errorf("leader-election Role differs from config (-config +chart):\n%s", diff)
		}
		rb := into[rbacv1.RoleBinding](t, r, "RoleBinding", namespace, controllerName+"-leader-election")
		if rb.RoleRef.Name != le.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Name != controllerName {
			t.Errorf("leader-election RoleBinding: roleRef %+v subjects %+v", rb.RoleRef, rb.Subjects)
		}
	})

	t.Run("CRDs are config's, kept on uninstall", func(t *testing.T) {
		for _, plural := range []string{"layerpolicies", "nodelayerreports", "layeroffloads"} {
			name := plural + ".layerkeeper.dev"
			got := into[apiextensionsv1.CustomResourceDefinition](t, r, "CustomResourceDefinition", "", name)
			want := readConfig[apiextensionsv1.CustomResourceDefinition](t, "config/crd/bases/layerkeeper.dev_"+plural+".yaml")
			if diff := cmp.Diff(want.Spec, got.Spec); diff != "" {
				t.Errorf("CRD %s differs from config/crd/bases; run `make manifests chart` (-config +chart):\n%s", name, diff)
			}
			if got.Annotations["helm.sh/resource-policy"] != "keep" {
				t.Errorf("CRD %s annotations %v: want helm.sh/resource-policy: keep", name, got.Annotations)
			}
		}
	})

	t.Run("metrics Services", func(t *testing.T) {
		d := into[appsv1.Deployment](t, r, "Deployment", namespace, controllerName)
		ds := into[appsv1.DaemonSet](t, r, "DaemonSet", namespace, agentName)
		for _, tc := range []struct {
			name string
			pod  corev1.PodTemplateSpec
		}{{controllerName + "-metrics", d.Spec.Template}, {agentName + "-metrics", ds.Spec.Template}} {
			s := into[corev1.Service](t, r, "Service", namespace, tc.name)
			if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(tc.pod.Labels)) {
				t.Errorf("Service %s selects %v, not the pods %v", tc.name, s.Spec.Selector, tc.pod.Labels)
			}
			if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].TargetPort.StrVal != "metrics" || !hasPort(tc.pod.Spec.Containers[0], "metrics") {
				t.Errorf("Service %s ports %+v: want one targeting the containers' metrics port", tc.name, s.Spec.Ports)
			}
		}
	})

	t.Run("admission policies", func(t *testing.T) {
		for _, p := range []string{"own-report", "own-offloads"} {
			name := agentName + "-" + p
			vap := into[admissionv1.ValidatingAdmissionPolicy](t, r, "ValidatingAdmissionPolicy", "", name)
			want := `request.userInfo.username == "system:serviceaccount:` + namespace + `:` + agentName + `"`
			if len(vap.Spec.MatchConditions) != 1 || vap.Spec.MatchConditions[0].Expression != want {
				t.Errorf("%s matchConditions = %+v, want %s", name, vap.Spec.MatchConditions, want)
			}
			if vap.Spec.FailurePolicy == nil || *vap.Spec.FailurePolicy != admissionv1.Fail {
				t.Errorf("%s failurePolicy = %v, want Fail", name, vap.Spec.FailurePolicy)
			}
			b := into[admissionv1.ValidatingAdmissionPolicyBinding](t, r, "ValidatingAdmissionPolicyBinding", "", name)
			if b.Spec.PolicyName != name || !slices.Equal(b.Spec.ValidationActions, []admissionv1.ValidationAction{admissionv1.Deny}) {
				t.Errorf("binding %s: policyName %q actions %v", name, b.Spec.PolicyName, b.Spec.ValidationActions)
			}
		}
	})
}

func TestRenderOptions(t *testing.T) {
	cases := []struct {
		name   string
		values map[string]any
		check  func(t *testing.T, r rendered)
	}{{
		name:   "CRDs not kept on uninstall",
		values: map[string]any{"crds": map[string]any{"keep": false}},
		check: func(t *testing.T, r rendered) {
			crds := r.ofKind("CustomResourceDefinition")
			if len(crds) != 3 {
				t.Fatalf("%d CRDs, want 3", len(crds))
			}
			for _, u := range crds {
				if _, ok := u.GetAnnotations()["helm.sh/resource-policy"]; ok {
					t.Errorf("CRD %s keeps helm.sh/resource-policy with crds.keep=false", u.GetName())
				}
			}
		},
	}, {
		name:   "CRDs not installed",
		values: map[string]any{"crds": map[string]any{"install": false}},
		check: func(t *testing.T, r rendered) {
			if n := len(r.ofKind("CustomResourceDefinition")); n != 0 {
				t.Errorf("%d CRDs rendered with crds.install=false", n)
			}
		},
	}, {
		name:   "privileged agent",
		values: map[string]any{"agent": map[string]any{"privileged": true}},
		check: func(t *testing.T, r rendered) {
			ds := into[appsv1.DaemonSet](t, r, "DaemonSet", namespace, agentName)
			sc := ds.Spec.Template.Spec.Containers[0].SecurityContext
			if !isTrue(sc.Privileged) || sc.Capabilities != nil || (sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation) {
				t.Errorf("securityContext %+v: want privileged, no capability list, escalation not forbidden", sc)
			}
			if !ds.Spec.Template.Spec.HostPID || !ds.Spec.Template.Spec.Containers[0].VolumeMounts[0].ReadOnly {
				t.Errorf("a privileged agent must keep hostPID and the read-only host mount")
			}
		},
	}, {
		name:   "ServiceMonitors",
		values: map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}}}},
		check: func(t *testing.T, r rendered) {
			for _, component := range []string{"controller", "agent"} {
				sm := r.get(t, "ServiceMonitor", namespace, fullname+"-"+component)
				if sm.GetLabels()["release"] != "prometheus" {
					t.Errorf("ServiceMonitor %s labels %v lack release=prometheus", sm.GetName(), sm.GetLabels())
				}
				sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
				svc := r.get(t, "Service", namespace, fullname+"-"+component+"-metrics")
				if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(labels.Set(svc.GetLabels())) {
					t.Errorf("ServiceMonitor %s selects %v, not Service %s %v", sm.GetName(), sel, svc.GetName(), svc.GetLabels())
				}
				eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
				if len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" || eps[0].(map[string]any)["honorLabels"] != true {
					t.Errorf("ServiceMonitor %s endpoints %v: want port metrics, honorLabels", sm.GetName(), eps)
				}
			}
		},
	}, {
		name:   "Grafana dashboard",
		values: map[string]any{"grafanaDashboard": map[string]any{"enabled": true}},
		check: func(t *testing.T, r rendered) {
			cm := into[corev1.ConfigMap](t, r, "ConfigMap", namespace, fullname+"-dashboard")
			if cm.Labels["grafana_dashboard"] != "1" {
				t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard=1", cm.Labels)
			}
			var dash struct {
				Title  string           `json:"title"`
				Panels []map[string]any `json:"panels"`
			}
			if err := json.Unmarshal([]byte(cm.Data["layerkeeper.json"]), &dash); err != nil {
				t.Fatalf("dashboard is not JSON: %v", err)
			}
			if dash.Title == "" || len(dash.Panels) == 0 {
				t.Errorf("dashboard has title %q and %d panels", dash.Title, len(dash.Panels))
			}
		},
	}, {
		name: "S3 credentials Secrets readable only in listed namespaces",
		values: map[string]any{"s3": map[string]any{
			"credentialsSecretNamespaces": []any{"team-a", "team-b"}, "credentialsSecretNames": []any{"s3-credentials"}}},
		check: func(t *testing.T, r rendered) {
			if n := len(r.ofKind("Role")); n != 3 {
				t.Errorf("%d Roles, want leader election + 2 namespaces", n)
			}
			for _, ns := range []string{"team-a", "team-b"} {
				role := into[rbacv1.Role](t, r, "Role", ns, agentName+"-s3-credentials")
				want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{"s3-credentials"}}}
				if diff := cmp.Diff(want, role.Rules); diff != "" {
					t.Errorf("Role in %s (-want +got):\n%s", ns, diff)
				}
				rb := into[rbacv1.RoleBinding](t, r, "RoleBinding", ns, agentName+"-s3-credentials")
				wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: agentName, Namespace: namespace}}
				if rb.RoleRef.Name != role.Name || rb.RoleRef.Kind != "Role" || !cmp.Equal(wantSubjects, rb.Subjects) {
					t.Errorf("RoleBinding in %s: roleRef %+v subjects %+v", ns, rb.RoleRef, rb.Subjects)
				}
			}
		},
	}, {
		name: "IRSA annotations, an existing credentials Secret, region and endpoint",
		values: map[string]any{
			"agent": map[string]any{"serviceAccount": map[string]any{"annotations": map[string]any{"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/agent"}}},
			"s3":    map[string]any{"existingSecret": "layerkeeper-s3", "region": "eu-west-1", "endpoint": "https://s3.example"},
		},
		check: func(t *testing.T, r rendered) {
			sa := into[corev1.ServiceAccount](t, r, "ServiceAccount", namespace, agentName)
			if sa.Annotations["eks.amazonaws.com/role-arn"] != "arn:aws:iam::111122223333:role/agent" {
				t.Errorf("agent ServiceAccount annotations = %v", sa.Annotations)
			}
			c := into[appsv1.DaemonSet](t, r, "DaemonSet", namespace, agentName).Spec.Template.Spec.Containers[0]
			if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "layerkeeper-s3" {
				t.Errorf("envFrom = %+v, want Secret layerkeeper-s3", c.EnvFrom)
			}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			if env["AWS_REGION"] != "eu-west-1" || env["AWS_ENDPOINT_URL_S3"] != "https://s3.example" {
				t.Errorf("env = %v, want AWS_REGION and AWS_ENDPOINT_URL_S3", env)
			}
			if n := len(r.ofKind("Role")); n != 1 {
				t.Errorf("%d Roles: an existing Secret in the release namespace needs no Secret access", n)
			}
		},
	}, {
		name:   "one controller replica has no PDB",
		values: map[string]any{"controller": map[string]any{"replicas": 1}},
		check: func(t *testing.T, r rendered) {
			if n := len(r.ofKind("PodDisruptionBudget")); n != 0 {
				t.Errorf("%d PodDisruptionBudgets with one replica (it would block every drain)", n)
			}
		},
	}, {
		name:   "node restriction off",
		values: map[string]any{"agent": map[string]any{"nodeRestriction": map[string]any{"enabled": false}}},
		check: func(t *testing.T, r rendered) {
			if n := len(r.ofKind("ValidatingAdmissionPolicy")) + len(r.ofKind("ValidatingAdmissionPolicyBinding")); n != 0 {
				t.Errorf("%d admission policy objects with agent.nodeRestriction.enabled=false", n)
			}
		},
	}, {
		name:   "containerd socket",
		values: map[string]any{"agent": map[string]any{"containerdSocket": "/run/k3s/containerd/containerd.sock"}},
		check: func(t *testing.T, r rendered) {
			a := into[appsv1.DaemonSet](t, r, "DaemonSet", namespace, agentName).Spec.Template.Spec.Containers[0]
			if !slices.Contains(a.Args, "--containerd-socket=/run/k3s/containerd/containerd.sock") {
				t.Errorf("agent args %v: want --containerd-socket=/run/k3s/containerd/containerd.sock", a.Args)
			}
		},
	}, {
		name: "names, image, extra args, CPU budget, scheduling",
		values: map[string]any{
			"fullnameOverride": "lkp",
			"image":            map[string]any{"repository": "registry.example/layerkeeper", "tag": "v9.9.9", "pullPolicy": "Always"},
			"controller":       map[string]any{"extraArgs": []any{"--stale-after=10m"}, "nodeSelector": map[string]any{"pool": "system"}},
			"agent": map[string]any{"cpuLimit": 0.25, "extraArgs": []any{"--interval=1m"}, "priorityClassName": "",
				"tolerations": []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}}},
		},
		check: func(t *testing.T, r rendered) {
			d := into[appsv1.Deployment](t, r, "Deployment", namespace, "lkp-controller")
			c := d.Spec.Template.Spec.Containers[0]
			if c.Image != "registry.example/layerkeeper:v9.9.9" || c.ImagePullPolicy != corev1.PullAlways {
				t.Errorf("controller image %q pull %q", c.Image, c.ImagePullPolicy)
			}
			if c.Args[len(c.Args)-1] != "--stale-after=10m" || d.Spec.Template.Spec.NodeSelector["pool"] != "system" {
				t.Errorf("controller args %v nodeSelector %v", c.Args, d.Spec.Template.Spec.NodeSelector)
			}
			ds := into[appsv1.DaemonSet](t, r, "DaemonSet", namespace, "lkp-agent")
			a := ds.Spec.Template.Spec.Containers[0]
			if !slices.Contains(a.Args, "--cpu-limit=0.25") || a.Args[len(a.Args)-1] != "--interval=1m" {
				t.Errorf("agent args %v: want --cpu-limit=0.25 and --interval=1m last", a.Args)
			}
			if ds.Spec.Template.Spec.PriorityClassName != "" || len(ds.Spec.Template.Spec.Tolerations) != 1 || ds.Spec.Template.Spec.Tolerations[0].Key != "dedicated" {
				t.Errorf("agent priorityClassName %q tolerations %+v", ds.Spec.Template.Spec.PriorityClassName, ds.Spec.Template.Spec.Tolerations)
			}
			vap := into[admissionv1.ValidatingAdmissionPolicy](t, r, "ValidatingAdmissionPolicy", "", "lkp-agent-own-report")
			if want := `request.userInfo.username == "system:serviceaccount:` + namespace + `:lkp-agent"`; vap.Spec.MatchConditions[0].Expression != want {
				t.Errorf("admission policy matches %q, want %q", vap.Spec.MatchConditions[0].Expression, want)
			}
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, render(t, release, namespace, tc.values))
		})
	}
}

func onlyContainer(t *testing.T, pod corev1.PodSpec) corev1.Container {
	t.Helper()
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	return pod.Containers[0]
}

func hasPort(c corev1.Container, name string) bool {
	for _, p := range c.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

func isTrue(b *bool) bool { return b != nil && *b }
