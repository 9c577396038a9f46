package containerd

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/layerkeeper/layerkeeper/nodeagent/discovery/enginetest"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// LogWriterImage is the image ImportLogWriter imports: /logwriter (see testdata/logwriter) as
// its entrypoint.
const LogWriterImage = "localhost/layerkeeper-logwriter:test"

var (
	buildMu    sync.Mutex
	buildCache = map[string][]byte{}
)

// BuildProgram builds the static program testdata/<name> of this package (once per test
// binary) and returns the executable's bytes.
func BuildProgram(t testing.TB, name string) []byte {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := buildCache[name]; ok {
		return b
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the containerd harness source")
	}
	goBin := testenv.RequireBinary(t, "go")
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "main.go")
	cmd.Dir = filepath.Join(filepath.Dir(file), "testdata", name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	buildCache[name] = b
	return b
}

// ImportLogWriter builds the log writer image and imports it.
func (c *Containerd) ImportLogWriter(t testing.TB) {
	t.Helper()
	p := filepath.Join(c.Dir, "logwriter.tar")
	err := enginetest.WriteDockerArchiveFile(p, enginetest.Image{
		RepoTag: LogWriterImage,
		Files:   map[string]enginetest.ImageFile{"/logwriter": {Mode: 0o755, Content: BuildProgram(t, "logwriter")}},
		// The mount points CRI needs, so that only files the workload writes (and the
		// 0-byte /etc/hosts, /etc/hostname, /etc/resolv.conf CRI bind-mounts onto) land in
		// the writable layer.
		Dirs:       []string{"/dev", "/proc", "/sys", "/etc", "/tmp", "/opt/airflow/logs"},
		Entrypoint: []string{"/logwriter"},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.ImportImage(t, p)
}
