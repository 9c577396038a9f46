package chart

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/layerkeeper/layerkeeper/test/framework"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// HelmEnv names the helm binary (`make test` sets it to what `hack/build-tool.sh helm` built).
const HelmEnv = "LAYERKEEPER_HELM"

var chartDir = filepath.Join(framework.RepoRoot(), "charts", "layerkeeper")

// helm runs the helm binary with its caches in a scratch directory and returns its stdout.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := testenv.RequireBinary(t, testenv.RequireEnv(t, HelmEnv))
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

// valuesFile writes values to a file for helm's -f.
func valuesFile(t *testing.T, values map[string]any) string {
	t.Helper()
	b, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	// Not under t.TempDir(): helm splits -f on commas, which subtest names may hold.
	f, err := os.CreateTemp("", "layerkeeper-values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(f.Name()) })
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// rendered is the output of `helm template`, decoded.
type rendered []*unstructured.Unstructured

// render runs `helm template` for a release with the given values and decodes every document.
func render(t *testing.T, release, namespace string, values map[string]any) rendered {
	t.Helper()
	out := helm(t, "template", release, chartDir, "--namespace", namespace, "-f", valuesFile(t, values))
	return decode(t, out)
}

func decode(t *testing.T, manifests []byte) rendered {
	t.Helper()
	var objs rendered
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	for {
		var m map[string]any
		err := d.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decoding the rendered manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			t.Fatalf("rendered object without kind, apiVersion or name: %v", m)
		}
		objs = append(objs, u)
	}
}

// ofKind returns the objects of a kind.
func (r rendered) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range r {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// kinds counts the objects by kind.
func (r rendered) kinds() map[string]int {
	n := map[string]int{}
	for _, u := range r {
		n[u.GetKind()]++
	}
	return n
}

// get finds one object, failing the test when it is missing.
func (r rendered) get(t *testing.T, kind, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range r {
		if u.GetKind() == kind && u.GetNamespace() == namespace && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("no %s %s/%s rendered; got %s", kind, namespace, name, r)
	return nil
}

// into converts an object to its typed form, failing on any field the type does not know (so a
// misplaced key in a template is caught).
func into[T any](t *testing.T, r rendered, kind, namespace, name string) *T {
	t.Helper()
	u := r.get(t, kind, namespace, name)
	obj := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, obj, true); err != nil {
		t.Fatalf("%s %s/%s: %v", kind, namespace, name, err)
	}
	return obj
}

func (r rendered) String() string {
	var names []string
	for _, u := range r {
		names = append(names, u.GetKind()+" "+u.GetNamespace()+"/"+u.GetName())
	}
	return strings.Join(names, ", ")
}
