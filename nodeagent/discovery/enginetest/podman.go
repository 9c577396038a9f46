package enginetest

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/layerkeeper/layerkeeper/test/host"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// Podman runs podman with its graph root, run root and temporary directory in a scratch
// directory, the cgroupfs manager and file events (no systemd needed).
type Podman struct {
	// Dir is the scratch directory.
	Dir string
	// Root and RunRoot are the containers/storage graph root and run root.
	Root, RunRoot string

	bin string
	t   testing.TB
}

// NewPodman prepares podman for a test and removes every container and mount it made when the
// test ends.
func NewPodman(t testing.TB) *Podman {
	t.Helper()
	testenv.RequireRoot(t)
	bin := testenv.RequireBinary(t, "podman")
	testenv.RequireBinary(t, "conmon")
	dir := scratch(t, "lkpodman")
	p := &Podman{Dir: dir, Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), bin: bin, t: t}
	// containers/image keeps a blob cache at a fixed place for root.
	removeResidue(t, "/var/lib/containers/cache/blob-info-cache-v1.boltdb", "/var/lib/containers/cache", "/var/lib/containers")
	removeResidue(t, cgroupDirs("libpod_parent/conmon", "libpod_parent")...)
	t.Cleanup(func() {
		if _, err := p.Run("rm", "-a", "-f", "-t", "0"); err != nil {
			t.Logf("cleanup: %v", err)
		}
		if _, err := p.Run("rmi", "-a", "-f"); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return p
}

// Run runs podman with this test's storage and returns its output.
func (p *Podman) Run(args ...string) (string, error) {
	base := []string{
		"--root", p.Root, "--runroot", p.RunRoot, "--tmpdir", filepath.Join(p.Dir, "tmp"),
		"--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
	}
	return run(context.Background(), 2*time.Minute, nil, p.bin, append(base, args...)...)
}

// MustRun is Run failing the test on error.
func (p *Podman) MustRun(args ...string) string {
	p.t.Helper()
	out, err := p.Run(args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// cgroupDirs returns the given cgroup paths in every mounted cgroup hierarchy (the engines
// create their parent cgroups in each).
func cgroupDirs(names ...string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i := 6; i+1 < len(fields); i++ {
			if fields[i] == "-" {
				if fields[i+1] == "cgroup" || fields[i+1] == "cgroup2" {
					for _, n := range names {
						out = append(out, filepath.Join(host.UnescapeMountinfo(fields[4]), n))
					}
				}
				break
			}
		}
	}
	return out
}

// removeResidue removes, when the test ends, those of the given paths (files or empty
// directories, listed innermost first) that did not exist before: state that engines create at
// fixed host paths. Paths in use by something else (non-empty directories) are left alone.
func removeResidue(t testing.TB, paths ...string) {
	t.Helper()
	var fresh []string
	for _, p := range paths {
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			fresh = append(fresh, p)
		}
	}
	t.Cleanup(func() {
		for _, p := range fresh {
			_ = os.Remove(p) // fails harmlessly on a directory someone else filled meanwhile
		}
	})
}
