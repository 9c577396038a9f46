package chart

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/layerkeeper/layerkeeper/test/framework"
)

// TestDockerfile checks the image the chart runs without a container engine: a static build in
// a Go stage, the binary alone in a distroless (or scratch) stage, /layerkeeper as the entry
// point, and every directory of the binary's own packages copied into the build stage (a new
// package directory the Dockerfile forgets would break `make docker-build` only).
func TestDockerfile(t *testing.T) {
	root := framework.RepoRoot()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?`).FindAllStringSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final stage", len(froms))
	}
	if build := froms[0]; !strings.HasPrefix(build[1], "golang:") || build[2] == "" {
		t.Errorf("first stage %q: want a named golang build stage", build[0])
	}
	if final := froms[len(froms)-1][1]; final != "scratch" && !strings.HasPrefix(final, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s: want a static distroless image or scratch", final)
	}
	if !regexp.MustCompile(`CGO_ENABLED=0\b[^\n]*go build`).MatchString(df) {
		t.Error("the binary is not built with CGO_ENABLED=0")
	}
	if !regexp.MustCompile(`(?m)^COPY --from=\S+ \S+ /layerkeeper$`).MatchString(df) {
		t.Error("the final stage does not copy the binary to /layerkeeper")
	}
	if !regexp.MustCompile(`(?m)^ENTRYPOINT \["/layerkeeper"\]$`).MatchString(df) {
		t.Error(`ENTRYPOINT is not ["/layerkeeper"]`)
	}

	out, err := exec.Command("go", "list", "-C", root, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/layerkeeper/layerkeeper/"
	var dirs []string
	for _, pkg := range strings.Fields(string(out)) {
		if rel, ok := strings.CutPrefix(pkg, module); ok {
			if dir, _, _ := strings.Cut(rel, "/"); !slices.Contains(dirs, dir) {
				dirs = append(dirs, dir)
			}
		}
	}
	if len(dirs) == 0 {
		t.Fatal("go list found none of the module's packages under the binary")
	}
	for _, dir := range dirs {
		if !regexp.MustCompile(`(?m)^COPY ` + regexp.QuoteMeta(dir) + `/? `).MatchString(df) {
			t.Errorf("the binary imports packages under %s/, which the Dockerfile does not copy", dir)
		}
	}
}
