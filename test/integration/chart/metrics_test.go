package chart

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/layerkeeper/layerkeeper/test/framework"
)

// enforceModeMetrics are the Enforce-mode metrics the dashboard must chart.
var enforceModeMetrics = []string{"layerkeeper_offloads_total", "layerkeeper_offload_bytes_total", "layerkeeper_remediations_total"}

// codeMetrics returns the names of the metrics the controller and agent define.
func codeMetrics(t *testing.T) []string {
	t.Helper()
	re := regexp.MustCompile(`Name:\s*"(layerkeeper_[a-z0-9_]+)"`)
	var names []string
	for _, dir := range []string{"controllers", "nodeagent"} {
		err := filepath.WalkDir(filepath.Join(framework.RepoRoot(), dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			for _, m := range re.FindAllSubmatch(b, -1) {
				names = append(names, string(m[1]))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(names) == 0 {
		t.Fatal("found no metric in controllers/ or nodeagent/")
	}
	return names
}

// documentedMetrics returns the metrics docs/metrics.md has a table row for.
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(framework.RepoRoot(), "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(layerkeeper_[a-z0-9_]+)` \\|").FindAllSubmatch(b, -1) {
		names = append(names, string(m[1]))
	}
	return names
}

func TestMetricsDocumented(t *testing.T) {
	code, docs := codeMetrics(t), documentedMetrics(t)
	known := code
	for _, n := range known {
		if !slices.Contains(docs, n) {
			t.Errorf("metric %s is not documented in docs/metrics.md", n)
		}
	}
	for _, n := range docs {
		if !slices.Contains(known, n) {
			t.Errorf("docs/metrics.md documents %s, which no code defines", n)
		}
	}
}

func TestDashboardUsesDocumentedMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "layerkeeper.json"))
	if err != nil {
		t.Fatal(err)
	}
	docs := documentedMetrics(t)
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`layerkeeper_[a-z0-9_]+`).FindAll(b, -1) {
		n := string(m)
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base := strings.TrimSuffix(n, suffix); base != n && slices.Contains(docs, base) {
				n = base
			}
		}
		used[n] = true
	}
	for n := range used {
		if !slices.Contains(docs, n) {
			t.Errorf("the dashboard queries %s, which docs/metrics.md does not document", n)
		}
	}
	for _, n := range append([]string{"layerkeeper_container_writable_layer_bytes", "layerkeeper_node_filesystem_available_bytes",
		"layerkeeper_node_filesystem_capacity_bytes"}, enforceModeMetrics...) {
		if !used[n] {
			t.Errorf("the dashboard has no panel on %s", n)
		}
	}
}
