package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/test/builders"
	"github.com/layerkeeper/layerkeeper/test/framework"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

var apiServer *framework.APIServer

func TestMain(m *testing.M) {
	var err error
	apiServer, err = framework.StartAPIServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := apiServer.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the API server:", err)
	}
	os.Exit(code)
}

func requireAPIServer(t *testing.T) client.Client {
	t.Helper()
	if apiServer == nil {
		testenv.Unavailable(t, "envtest assets (%s)", framework.AssetsEnv)
	}
	return apiServer.Client
}

// toUnstructured turns a typed object into the map the API server receives, so that a case
// can also set values the Go types cannot express (a malformed duration, an integer quantity).
func toUnstructured(t *testing.T, obj runtime.Object, gvk string) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind(gvk)
	return u
}

func set(path string, value any) func(map[string]any) {
	return func(m map[string]any) {
		parts := strings.Split(path, ".")
		if err := unstructured.SetNestedField(m, value, parts...); err != nil {
			panic(err)
		}
	}
}

func setHotPathField(field string, value any) func(map[string]any) {
	return func(m map[string]any) {
		hps, _, _ := unstructured.NestedSlice(m, "spec", "hotPaths")
		hps[0].(map[string]any)[field] = value
		_ = unstructured.SetNestedSlice(m, hps, "spec", "hotPaths")
	}
}

func enforceSample() *builders.LayerPolicyWrapper {
	return builders.MakeLayerPolicy("p", "default").
		MatchLabels("component", "scheduler").
		Mode(v1alpha1.ModeEnforce).
		Thresholds("2Gi", "4Gi", "8Gi").
		HotPath("/opt/airflow/logs", "**/*.log").MinAge(10*time.Minute).
		S3("airflow-logs", "http://127.0.0.1:9000")
}

func TestLayerPolicyValidation(t *testing.T) {
	c := requireAPIServer(t)
	ctx := context.Background()

	cases := []struct {
		name   string
		policy *v1alpha1.LayerPolicy
		mutate func(map[string]any)
		// wantErr lists substrings of the rejection; empty means the object is accepted.
		// The first names the field, so a user knows what to fix.
		wantErr []string
	}{
		{name: "minimal audit policy", policy: builders.MakeLayerPolicy("p", "default").Obj()},
		{name: "the airflow sample in Enforce mode", policy: enforceSample().Obj()},
		{name: "only warn", policy: builders.MakeLayerPolicy("p", "default").Thresholds("2Gi", "", "").Obj()},
		{name: "equal thresholds", policy: enforceSample().Thresholds("4Gi", "4Gi", "4Gi").Obj()},
		{name: "integer thresholds", policy: builders.MakeLayerPolicy("p", "default").Obj(),
			mutate: func(m map[string]any) {
				set("spec.thresholds.warn", int64(1000))(m)
				set("spec.thresholds.restart", int64(2000))(m)
			}},
		{name: "Enforce restart-only needs no S3", policy: builders.MakeLayerPolicy("p", "default").Mode(v1alpha1.ModeEnforce).Thresholds("", "", "1Gi").Obj()},
		{name: "bucket with dots and dashes", policy: enforceSample().S3("my.bucket-01", "https://s3.example.com").Obj()},
		{name: "AWS S3 without endpoint", policy: enforceSample().S3("airflow-logs", "").Obj()},
		{name: "zero durations", policy: enforceSample().MinAge(0).Remediation(v1alpha1.ActionEvictPod, 0, 1).LeadTime(0).Obj()},

		{name: "missing selector", policy: builders.MakeLayerPolicy("p", "default").Obj(),
			mutate:  func(m map[string]any) { unstructured.RemoveNestedField(m, "spec", "selector") },
			wantErr: []string{"spec.selector", "Required value"}},
		{name: "missing spec", policy: builders.MakeLayerPolicy("p", "default").Obj(),
			mutate:  func(m map[string]any) { delete(m, "spec") },
			wantErr: []string{"spec", "Required value"}},
		{name: "warn above offload", policy: enforceSample().Thresholds("5Gi", "4Gi", "8Gi").Obj(),
			wantErr: []string{"spec.thresholds.warn", "thresholds.warn must be less than or equal to thresholds.offload"}},
		{name: "offload above restart", policy: enforceSample().Thresholds("2Gi", "9Gi", "8Gi").Obj(),
			wantErr: []string{"spec.thresholds.offload", "thresholds.offload must be less than or equal to thresholds.restart"}},
		{name: "warn above restart without offload", policy: builders.MakeLayerPolicy("p", "default").Thresholds("3Gi", "", "1Gi").Obj(),
			wantErr: []string{"spec.thresholds.warn", "thresholds.warn must be less than or equal to thresholds.restart"}},
		{name: "integer warn above string restart", policy: builders.MakeLayerPolicy("p", "default").Thresholds("", "", "1Ki").Obj(),
			mutate:  set("spec.thresholds.warn", int64(2048)),
			wantErr: []string{"spec.thresholds.warn", "thresholds.warn must be less than or equal to thresholds.restart"}},
		{name: "negative warn", policy: builders.MakeLayerPolicy("p", "default").Thresholds("-1Gi", "", "").Obj(),
			wantErr: []string{"spec.thresholds.warn", "thresholds.warn must be greater than zero"}},
		{name: "zero restart", policy: builders.MakeLayerPolicy("p", "default").Thresholds("", "", "0").Obj(),
			wantErr: []string{"spec.thresholds.restart", "thresholds.restart must be greater than zero"}},
		{name: "relative hot path", policy: enforceSample().Obj(), mutate: setHotPathField("path", "opt/airflow/logs"),
			wantErr: []string{"spec.hotPaths[0].path", "must be absolute"}},
		{name: "hot path with ..", policy: enforceSample().Obj(), mutate: setHotPathField("path", "/opt/../etc"),
			wantErr: []string{"spec.hotPaths[0].path", "must not contain '..'"}},
		{name: "hot path with //", policy: enforceSample().Obj(), mutate: setHotPathField("path", "/opt//logs"),
			wantErr: []string{"spec.hotPaths[0].path", "must be clean"}},
		{name: "hot path with trailing /", policy: enforceSample().Obj(), mutate: setHotPathField("path", "/opt/logs/"),
			wantErr: []string{"spec.hotPaths[0].path", "must be clean"}},
		{name: "hot path with . element", policy: enforceSample().Obj(), mutate: setHotPathField("path", "/opt/./logs"),
			wantErr: []string{"spec.hotPaths[0].path", "must be clean"}},
		{name: "hot path is the root", policy: enforceSample().Obj(), mutate: setHotPathField("path", "/"),
			wantErr: []string{"spec.hotPaths[0].path", "at least 2"}},
		{name: "negative minAge", policy: enforceSample().Obj(), mutate: setHotPathField("minAge", "-5m"),
			wantErr: []string{"spec.hotPaths[0].minAge", "hotPaths[].minAge must not be negative"}},
		{name: "malformed minAge", policy: enforceSample().Obj(), mutate: setHotPathField("minAge", "5 minutes"),
			wantErr: []string{"spec.hotPaths[0].minAge", "should match"}},
		{name: "negative cooldown", policy: enforceSample().Obj(), mutate: set("spec.remediation.cooldown", "-1h"),
			wantErr: []string{"spec.remediation.cooldown", "remediation.cooldown must not be negative"}},
		{name: "negative leadTime", policy: enforceSample().Obj(), mutate: set("spec.thresholds.leadTime", "-30s"),
			wantErr: []string{"spec.thresholds.leadTime", "thresholds.leadTime must not be negative"}},
		{name: "negative ttlAfterFinished", policy: enforceSample().Obj(), mutate: set("spec.offload.ttlAfterFinished", "-2h"),
			wantErr: []string{"spec.offload.ttlAfterFinished", "offload.ttlAfterFinished must not be negative"}},
		{name: "Enforce with offload threshold but no S3 target", policy: builders.MakeLayerPolicy("p", "default").Mode(v1alpha1.ModeEnforce).Thresholds("", "4Gi", "").HotPath("/var/log").Obj(),
			wantErr: []string{"spec.offload", "spec.offload.s3 is required when spec.mode is Enforce and spec.thresholds.offload is set"}},
		{name: "offload without s3", policy: enforceSample().Obj(), mutate: func(m map[string]any) { unstructured.RemoveNestedField(m, "spec", "offload", "s3") },
			wantErr: []string{"spec.offload.s3", "Required value"}},
		{name: "Enforce with offload threshold but no hot paths", policy: builders.MakeLayerPolicy("p", "default").Mode(v1alpha1.ModeEnforce).Thresholds("", "4Gi", "").S3("logs", "").Obj(),
			wantErr: []string{"spec.hotPaths", "spec.hotPaths must name at least one path"}},
		{name: "bucket with uppercase and underscore", policy: enforceSample().S3("My_Bucket", "").Obj(),
			wantErr: []string{"spec.offload.s3.bucket", "offload.s3.bucket must be a valid S3 bucket name"}},
		{name: "bucket shaped like an IP address", policy: enforceSample().S3("127.0.0.1", "").Obj(),
			wantErr: []string{"spec.offload.s3.bucket", "not an IP address"}},
		{name: "bucket with ..", policy: enforceSample().S3("logs..old", "").Obj(),
			wantErr: []string{"spec.offload.s3.bucket", "no '..'"}},
		{name: "bucket too short", policy: enforceSample().S3("ab", "").Obj(),
			wantErr: []string{"spec.offload.s3.bucket", "at least 3"}},
		{name: "bucket ending with a dash", policy: enforceSample().S3("logs-", "").Obj(),
			wantErr: []string{"spec.offload.s3.bucket", "starting and ending with a letter or digit"}},
		{name: "endpoint that is not http", policy: enforceSample().S3("logs", "ftp://127.0.0.1/").Obj(),
			wantErr: []string{"spec.offload.s3.endpoint", "must be an http or https URL"}},
		{name: "endpoint without host", policy: enforceSample().S3("logs", "http://").Obj(),
			wantErr: []string{"spec.offload.s3.endpoint", "must be an http or https URL"}},
		{name: "unknown mode", policy: builders.MakeLayerPolicy("p", "default").Obj(), mutate: set("spec.mode", "Observe"),
			wantErr: []string{"spec.mode", "Unsupported value"}},
		{name: "unknown remediation action", policy: builders.MakeLayerPolicy("p", "default").Obj(), mutate: set("spec.remediation.action", "Delete"),
			wantErr: []string{"spec.remediation.action", "Unsupported value"}},
		{name: "maxConcurrent zero", policy: builders.MakeLayerPolicy("p", "default").Obj(), mutate: set("spec.remediation.maxConcurrent", int64(0)),
			wantErr: []string{"spec.remediation.maxConcurrent", "greater than or equal to 1"}},
		{name: "node pressure margin of 100%", policy: builders.MakeLayerPolicy("p", "default").NodePressure(100).Obj(),
			wantErr: []string{"spec.nodePressure.minAvailablePercent", "less than or equal to 99"}},
		{name: "empty container name", policy: builders.MakeLayerPolicy("p", "default").Containers("").Obj(),
			wantErr: []string{"spec.containers[0]", "at least 1"}},
		{name: "duplicate hot paths", policy: enforceSample().HotPath("/opt/airflow/logs").Obj(),
			wantErr: []string{"spec.hotPaths[1]", "Duplicate value"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := toUnstructured(t, tc.policy, "LayerPolicy")
			u.SetName(fmt.Sprintf("cel-%d", i))
			if tc.mutate != nil {
				tc.mutate(u.Object)
			}
			err := c.Create(ctx, u)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("valid policy rejected: %v", err)
				}
				_ = c.Delete(ctx, u)
				return
			}
			if err == nil {
				_ = c.Delete(ctx, u)
				t.Fatalf("invalid policy accepted; want an error containing %q", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err.Error(), want)
				}
			}
		})
	}
}

// TestLayerPolicyDefaults proves the documented defaults are applied by the API server.
func TestLayerPolicyDefaults(t *testing.T) {
	c := requireAPIServer(t)
	ctx := context.Background()
	p := builders.MakeLayerPolicy("defaults", "default").Thresholds("1Gi", "2Gi", "").HotPath("/var/log").S3("logs", "").Obj()
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, p) })

	got := &v1alpha1.LayerPolicy{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(p), got); err != nil {
		t.Fatal(err)
	}
	want := v1alpha1.LayerPolicySpec{
		Selector: metav1.LabelSelector{},
		Mode:     v1alpha1.ModeAudit,
		Thresholds: v1alpha1.Thresholds{
			Warn:    p.Spec.Thresholds.Warn,
			Offload: p.Spec.Thresholds.Offload,
		},
		HotPaths: []v1alpha1.HotPath{{
			Path:              "/var/log",
			MinAge:            &metav1.Duration{Duration: 10 * time.Minute},
			DeleteAfterUpload: ptr.To(true),
		}},
		Offload: &v1alpha1.Offload{
			S3:               &v1alpha1.S3Target{Bucket: "logs", Prefix: "{{.Namespace}}/{{.Owner}}/{{.Pod}}/{{.Container}}"},
			TTLAfterFinished: &metav1.Duration{Duration: 24 * time.Hour},
		},
		Remediation: v1alpha1.Remediation{
			Action:               v1alpha1.ActionRolloutRestart,
			OffloadBeforeRestart: ptr.To(true),
			Cooldown:             &metav1.Duration{Duration: 30 * time.Minute},
			MaxConcurrent:        1,
		},
	}
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("defaulted spec (-want +got):\n%s", diff)
	}
}

func TestLayerOffloadValidation(t *testing.T) {
	c := requireAPIServer(t)
	ctx := context.Background()
	valid := func() *v1alpha1.LayerOffload {
		return &v1alpha1.LayerOffload{
			ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: "default"},
			Spec: v1alpha1.LayerOffloadSpec{
				PolicyName: "p", NodeName: "node-1", PodName: "pod", PodUID: "uid-1",
				ContainerName: "scheduler", ContainerID: "abc", Reason: v1alpha1.OffloadReasonThreshold,
				Paths:  []v1alpha1.HotPath{{Path: "/opt/airflow/logs"}},
				Target: v1alpha1.S3Target{Bucket: "airflow-logs", Prefix: "default/airflow/pod/scheduler"},
			},
		}
	}
	cases := []struct {
		name    string
		mutate  func(map[string]any)
		wantErr []string
	}{
		{name: "valid"},
		{name: "no paths", mutate: set("spec.paths", []any{}), wantErr: []string{"spec.paths", "at least 1"}},
		{name: "relative path", mutate: func(m map[string]any) {
			_ = unstructured.SetNestedSlice(m, []any{map[string]any{"path": "logs"}}, "spec", "paths")
		}, wantErr: []string{"spec.paths[0].path", "must be absolute"}},
		{name: "unknown reason", mutate: set("spec.reason", "Because"), wantErr: []string{"spec.reason", "Unsupported value"}},
		{name: "missing node", mutate: func(m map[string]any) { unstructured.RemoveNestedField(m, "spec", "nodeName") },
			wantErr: []string{"spec.nodeName", "Required value"}},
		{name: "bad bucket", mutate: set("spec.target.bucket", "Bad_Bucket"), wantErr: []string{"spec.target.bucket", "valid S3 bucket name"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := toUnstructured(t, valid(), "LayerOffload")
			u.SetName(fmt.Sprintf("offload-%d", i))
			if tc.mutate != nil {
				tc.mutate(u.Object)
			}
			err := c.Create(ctx, u)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("valid offload rejected: %v", err)
				}
				_ = c.Delete(ctx, u)
				return
			}
			if err == nil {
				_ = c.Delete(ctx, u)
				t.Fatalf("invalid offload accepted; want %q", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err.Error(), want)
				}
			}
		})
	}
}

// TestNodeLayerReportIsClusterScopedWithStatus proves the report round-trips its status
// through the status subresource, as the agent writes it.
func TestNodeLayerReportStatusRoundTrip(t *testing.T) {
	c := requireAPIServer(t)
	ctx := context.Background()
	r := &v1alpha1.NodeLayerReport{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	if err := c.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, r) })
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	r.Status = v1alpha1.NodeLayerReportStatus{
		ScanTime:       &now,
		Runtimes:       []v1alpha1.Runtime{v1alpha1.RuntimeContainerd},
		ContainerCount: 1,
		TotalBytes:     4096,
		Filesystems: []v1alpha1.FilesystemUsage{{Path: "/var/lib/containerd", CapacityBytes: 100, AvailableBytes: 50,
			KubeletFilesystem: v1alpha1.KubeletImagefs}},
		KubeletEviction: &v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile, NodefsAvailable: "10%",
			NodefsInodesFree: "5%", ImagefsAvailable: "2Gi", Message: "read /var/lib/kubelet/config.yaml"},
		Containers: []v1alpha1.ContainerLayer{{
			Runtime: v1alpha1.RuntimeContainerd, ContainerID: "abc", State: v1alpha1.ContainerRunning,
			Namespace: "default", Pod: "p", Container: "c", Bytes: 4096,
			HotPaths: []v1alpha1.HotPathUsage{{Path: "/var/log", Bytes: 4096, Files: 1}},
		}},
	}
	if err := c.Status().Update(ctx, r); err != nil {
		t.Fatal(err)
	}
	got := &v1alpha1.NodeLayerReport{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(r), got); err != nil {
		t.Fatal(err)
	}
	if got.Namespace != "" {
		t.Errorf("report has namespace %q, want cluster-scoped", got.Namespace)
	}
	if diff := cmp.Diff(r.Status, got.Status); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	for field, mutate := range map[string]func(*v1alpha1.NodeLayerReportStatus){
		"status.containers[0].state":              func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[0].State = "Paused" },
		"status.kubeletEviction.source":           func(s *v1alpha1.NodeLayerReportStatus) { s.KubeletEviction.Source = "Configz" },
		"status.kubeletEviction.nodefsAvailable":  func(s *v1alpha1.NodeLayerReportStatus) { s.KubeletEviction.NodefsAvailable = strings.Repeat("9", 33) },
		"status.kubeletEviction.message":          func(s *v1alpha1.NodeLayerReportStatus) { s.KubeletEviction.Message = strings.Repeat("x", 1025) },
		"status.filesystems[0].kubeletFilesystem": func(s *v1alpha1.NodeLayerReportStatus) { s.Filesystems[0].KubeletFilesystem = "rootfs" },
	} {
		bad := got.DeepCopy()
		mutate(&bad.Status)
		if err := c.Status().Update(ctx, bad); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("a bad %s was not rejected naming the field: %v", field, err)
		}
	}
	missing := toUnstructured(t, got, "NodeLayerReport")
	unstructured.RemoveNestedField(missing.Object, "status", "kubeletEviction", "source")
	if err := c.Status().Update(ctx, missing); err == nil || !strings.Contains(err.Error(), "status.kubeletEviction.source") {
		t.Errorf("kubeletEviction without a source was not rejected naming the field: %v", err)
	}
}

// TestSamplesAreAccepted applies every object of config/samples to the real API server.
func TestSamplesAreAccepted(t *testing.T) {
	c := requireAPIServer(t)
	ctx := context.Background()
	files, err := filepath.Glob(filepath.Join(framework.RepoRoot(), "config", "samples", "layerkeeper_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &u.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if ns := u.GetNamespace(); ns != "" {
			nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
			if err := c.Create(ctx, nsObj); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
		if err := c.Create(ctx, u); err != nil {
			t.Errorf("%s rejected: %v", filepath.Base(f), err)
			continue
		}
		_ = c.Delete(ctx, u)
	}
}
