//go:build linux

package scanner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// childScanEnv makes the test binary scan the directory it names, print the Usage as JSON
// and exit (used to scan as an unprivileged user).
const childScanEnv = "LAYERKEEPER_SCANNER_CHILD_SCAN"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childScanEnv); dir != "" {
		u, err := Scan(context.Background(), dir, Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		_ = json.NewEncoder(os.Stdout).Encode(u)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fsTree builds test trees: tree(t).file("a/b", 10).symlink("l", "/etc").
type fsTree struct {
	t    testing.TB
	root string
}

func tree(t testing.TB) *fsTree {
	t.Helper()
	return &fsTree{t: t, root: t.TempDir()}
}

func (f *fsTree) path(rel string) string { return filepath.Join(f.root, rel) }

func (f *fsTree) parent(rel string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(f.path(rel)), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fsTree) dir(rel string) *fsTree {
	f.t.Helper()
	if err := os.MkdirAll(f.path(rel), 0o755); err != nil {
		f.t.Fatal(err)
	}
	return f
}

// file writes size bytes (of non-zero data, so blocks get allocated).
func (f *fsTree) file(rel string, size int) *fsTree {
	f.t.Helper()
	f.parent(rel)
	if err := os.WriteFile(f.path(rel), bytes.Repeat([]byte{'x'}, size), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return f
}

func (f *fsTree) appendTo(rel string, size int) *fsTree {
	f.t.Helper()
	fh, err := os.OpenFile(f.path(rel), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.Write(bytes.Repeat([]byte{'y'}, size)); err != nil {
		f.t.Fatal(err)
	}
	return f
}

func (f *fsTree) sparse(rel string, size int64) *fsTree {
	f.t.Helper()
	f.parent(rel)
	fh, err := os.Create(f.path(rel))
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteAt([]byte("end"), size-3); err != nil {
		f.t.Fatal(err)
	}
	return f
}

func (f *fsTree) symlink(rel, target string) *fsTree {
	f.t.Helper()
	f.parent(rel)
	if err := os.Symlink(target, f.path(rel)); err != nil {
		f.t.Fatal(err)
	}
	return f
}

// hardlink links rel to existing, which may be an absolute path outside the tree.
func (f *fsTree) hardlink(rel, existing string) *fsTree {
	f.t.Helper()
	f.parent(rel)
	if !filepath.IsAbs(existing) {
		existing = f.path(existing)
	}
	if err := os.Link(existing, f.path(rel)); err != nil {
		f.t.Fatal(err)
	}
	return f
}

func (f *fsTree) mknod(rel string, mode uint32, major, minor uint32) *fsTree {
	f.t.Helper()
	testenv.RequireRoot(f.t)
	f.parent(rel)
	if err := unix.Mknod(f.path(rel), mode|0o644, int(unix.Mkdev(major, minor))); err != nil {
		f.t.Fatal(err)
	}
	return f
}

func (f *fsTree) whiteout(rel string) *fsTree { return f.mknod(rel, unix.S_IFCHR, 0, 0) }

func (f *fsTree) fifo(rel string) *fsTree {
	f.t.Helper()
	f.parent(rel)
	if err := unix.Mkfifo(f.path(rel), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return f
}

// socket binds a unix socket at rel and leaves the socket file behind.
func (f *fsTree) socket(rel string) *fsTree {
	f.t.Helper()
	f.parent(rel)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: f.path(rel)}); err != nil {
		f.t.Fatal(err)
	}
	return f
}

func (f *fsTree) xattr(rel, name, value string) *fsTree {
	f.t.Helper()
	if strings.HasPrefix(name, "trusted.") {
		testenv.RequireRoot(f.t)
	}
	if err := unix.Lsetxattr(f.path(rel), name, []byte(value), 0); err != nil {
		f.t.Fatalf("setxattr %s on %s: %v", name, rel, err)
	}
	return f
}

func (f *fsTree) remove(rel string) *fsTree {
	f.t.Helper()
	if err := os.RemoveAll(f.path(rel)); err != nil {
		f.t.Fatal(err)
	}
	return f
}

func mustScan(t testing.TB, dir string, opts Options) Usage {
	t.Helper()
	u, err := Scan(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Scan(%s): %v", dir, err)
	}
	return u
}

// du runs du with args on dir, optionally as another user, and returns the first number it
// prints. du exits 1 when it could not read something; the total is still printed.
func du(t testing.TB, cred *syscall.Credential, dir string, args ...string) int64 {
	t.Helper()
	bin := testenv.RequireBinary(t, "du")
	cmd := exec.Command(bin, append(args, dir)...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1 && stdout.Len() > 0) {
		t.Fatalf("du %v %s: %v: %s", args, dir, err, stderr.String())
	}
	field, _, _ := strings.Cut(stdout.String(), "\t")
	n, err := strconv.ParseInt(strings.TrimSpace(field), 10, 64)
	if err != nil {
		t.Fatalf("du %v %s: parse %q: %v", args, dir, stdout.String(), err)
	}
	return n
}

func duBytes(t testing.TB, dir string) int64  { return du(t, nil, dir, "-sB1") }
func duInodes(t testing.TB, dir string) int64 { return du(t, nil, dir, "-s", "--inodes") }

// duApparentFiles is `du -sb --apparent-size` minus the st_size of every directory, which
// is what Usage.ApparentBytes counts.
func duApparentFiles(t testing.TB, dir string) int64 {
	t.Helper()
	total := du(t, nil, dir, "-sb", "--apparent-size")
	out, err := exec.Command(testenv.RequireBinary(t, "find"), dir, "-type", "d", "-printf", `%s\n`).Output()
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	for _, l := range strings.Fields(string(out)) {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		total -= n
	}
	return total
}

// assertMatchesDu checks Bytes, Inodes and ApparentBytes against du on the same directory.
func assertMatchesDu(t testing.TB, dir string, u Usage) {
	t.Helper()
	if want := duBytes(t, dir); u.Bytes != want {
		t.Errorf("Bytes = %d, du -sB1 = %d (diff %d)", u.Bytes, want, u.Bytes-want)
	}
	if want := duInodes(t, dir); u.Inodes != want {
		t.Errorf("Inodes = %d, du -s --inodes = %d", u.Inodes, want)
	}
	if want := duApparentFiles(t, dir); u.ApparentBytes != want {
		t.Errorf("ApparentBytes = %d, du --apparent-size minus directories = %d", u.ApparentBytes, want)
	}
}

func blocksOf(t testing.TB, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// rmrf removes a tree of any depth (os.RemoveAll keeps a descriptor per level).
func rmrf(t testing.TB, dir string) {
	t.Helper()
	if out, err := exec.Command("rm", "-rf", dir).CombinedOutput(); err != nil {
		t.Errorf("rm -rf %s: %v: %s", dir, err, out)
	}
}

// laterClock returns a clock an hour ahead, so every file of a fresh tree is old ("cold")
// and no directory is too recent to trust.
func laterClock() func() time.Time {
	return func() time.Time { return time.Now().Add(time.Hour) }
}

func hasError(u Usage, substr string) bool {
	for _, e := range u.Errors {
		if strings.Contains(e, substr) {
			return true
		}
	}
	return false
}

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
