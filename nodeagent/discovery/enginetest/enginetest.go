// Package enginetest runs real container engines for tests: Debian's dockerd (with a
// containerd of its own) and podman, each with every directory in a scratch directory, no
// network and cleanup by recorded PID. It also builds the static workload binary the tests run
// as a container (test/images packs it into a docker-archive image that both engines load
// offline).
package enginetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/layerkeeper/layerkeeper/test/host"
	"github.com/layerkeeper/layerkeeper/test/images"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// BuildWorkload builds the static workload binary (see testdata/workload) and writes it to
// dst. The build happens once per test binary.
func BuildWorkload(t testing.TB, dst string) {
	t.Helper()
	testenv.RequireBinary(t, "go")
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the enginetest package source")
	}
	bin, err := images.BuildProgram(context.Background(), filepath.Join(filepath.Dir(file), "testdata", "workload"))
	if err != nil {
		t.Fatalf("building the workload: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, bin, 0o755); err != nil {
		t.Fatal(err)
	}
}

// run runs a command with a timeout and returns its trimmed stdout; failures include stderr.
func run(ctx context.Context, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// stopPID sends SIGTERM to pid, waits up to grace for it to exit (reaping it through wait, a
// channel closed when the process that started it has waited), then SIGKILLs it.
func stopPID(pid int, exited <-chan struct{}, grace time.Duration) {
	if pid <= 0 {
		return
	}
	_ = unix.Kill(pid, unix.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(grace):
	}
	_ = unix.Kill(pid, unix.SIGKILL)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
	}
}

// scratch returns a short scratch directory (unix socket paths are limited to 108 bytes),
// removed after the test once everything below it is unmounted.
func scratch(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := host.UnmountUnder(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return dir
}
