// Package enginetest runs real container engines for tests: Debian's dockerd (with a
// containerd of its own) and podman, each with every directory in a scratch directory, no
// network and cleanup by recorded PID. It also builds the static workload binary the tests run
// as a container and packs it into a docker-archive image that both engines load offline.
package enginetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// workloadSource is the directory of the workload program, next to this file.
func workloadSource(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the enginetest package source")
	}
	return filepath.Join(filepath.Dir(file), "testdata", "workload")
}

var (
	buildMu    sync.Mutex
	buildCache = map[string][]byte{}
)

// BuildWorkload builds the static workload binary (see testdata/workload) and writes it to
// dst. The build happens once per test binary.
func BuildWorkload(t testing.TB, dst string) {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	bin, ok := buildCache["workload"]
	if !ok {
		goBin := testenv.RequireBinary(t, "go")
		out := filepath.Join(t.TempDir(), "workload")
		cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "main.go")
		cmd.Dir = workloadSource(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-buildvcs=false")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building the workload: %v\n%s", err, b)
		}
		var err error
		if bin, err = os.ReadFile(out); err != nil {
			t.Fatal(err)
		}
		buildCache["workload"] = bin
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

// UnmountUnder lazily unmounts every mount at or below dir, deepest first.
func UnmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescape(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	var firstErr error
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT && firstErr == nil {
			firstErr = fmt.Errorf("unmounting %s: %w", mp, err)
		}
	}
	return firstErr
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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
		if err := UnmountUnder(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return dir
}
