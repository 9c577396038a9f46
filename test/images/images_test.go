package images

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/layerkeeper/layerkeeper/test/testenv"
)

func TestWriteDockerArchive(t *testing.T) {
	var buf bytes.Buffer
	err := WriteDockerArchive(&buf, Image{
		RepoTag:    "localhost/example:dev",
		Files:      map[string]ImageFile{"/bin/app": {Mode: 0o755, Content: []byte("app")}},
		Dirs:       []string{"/opt/airflow/logs"},
		Entrypoint: []string{"/bin/app"},
		User:       "65532:65532",
	})
	if err != nil {
		t.Fatal(err)
	}
	files := untar(t, buf.Bytes())
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest) != 1 || len(manifest[0].Layers) != 1 || !cmp.Equal(manifest[0].RepoTags, []string{"localhost/example:dev"}) {
		t.Fatalf("manifest.json = %+v", manifest)
	}
	var cfg struct {
		Config struct {
			Entrypoint []string
			User       string
		} `json:"config"`
	}
	if err := json.Unmarshal(files[manifest[0].Config], &cfg); err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(cfg.Config.Entrypoint, []string{"/bin/app"}) || cfg.Config.User != "65532:65532" {
		t.Errorf("config = %+v", cfg.Config)
	}
	var names []string
	for n := range untar(t, files[manifest[0].Layers[0]]) {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"bin/", "bin/app", "opt/", "opt/airflow/", "opt/airflow/logs/"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("layer entries (-want +got):\n%s", diff)
	}
}

func untar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = c
	}
}

// TestLogWriter runs the logwriter program: numbered lines of the requested size, files
// rotated by size in a dated directory, the last sequence number in .seq and on stdout.
func TestLogWriter(t *testing.T) {
	testenv.RequireBinary(t, "go")
	bin, err := BuildProgram(context.Background(), "test/images/logwriter")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "logwriter")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(dir, "logs")
	cmd := exec.Command(exe, "-dir", logs, "-rate", "40000", "-line-size", "100", "-rotate-bytes", "1000", "-lines", "35", "-exit", "0")
	cmd.Env = append(os.Environ(), "LOGWRITER_TICK=20ms")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("logwriter: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^started$`).Match(out) || !regexp.MustCompile(`(?m)^seq 35 bytes 3500 `).Match(out) ||
		!regexp.MustCompile(`(?m)^done 3500 lines 35$`).Match(out) {
		t.Errorf("stdout:\n%s", out)
	}
	seq, err := os.ReadFile(filepath.Join(logs, ".seq"))
	if err != nil || strings.TrimSpace(string(seq)) != "35" {
		t.Errorf(".seq = %q (%v), want 35", seq, err)
	}
	files, _ := filepath.Glob(filepath.Join(logs, "*", "*"))
	var got []string
	next := int64(1)
	for _, f := range files {
		if _, err := time.Parse("2006-01-02", filepath.Base(filepath.Dir(f))); err != nil {
			t.Errorf("file %s is not in a dated directory: %v", f, err)
		}
		got = append(got, filepath.Base(f))
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.SplitAfter(string(b), "\n") {
			if line == "" {
				continue
			}
			if len(line) != 100 || !strings.HasSuffix(line, ".\n") {
				t.Fatalf("%s: line %q is not 100 bytes of padded text", f, line)
			}
			n, err := strconv.ParseInt(strings.Fields(line)[0], 10, 64)
			if err != nil || n != next {
				t.Fatalf("%s: line %q, want sequence number %d", f, line, next)
			}
			next++
		}
	}
	if want := []string{"scheduler.000001.log", "scheduler.000002.log", "scheduler.000003.log", "scheduler.000004.log"}; !cmp.Equal(got, want) {
		t.Errorf("files %v, want %v (10 lines each, then 5)", got, want)
	}
	if next != 36 {
		t.Errorf("read lines 1..%d, want 1..35", next-1)
	}
}
