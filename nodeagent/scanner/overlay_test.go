//go:build linux

package scanner

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// overlay is a real overlayfs mount: lower, upper and work in a temporary directory.
type overlay struct {
	lower, upper, merged *fsTree
}

func mountOverlay(t *testing.T, buildLower func(*fsTree)) *overlay {
	t.Helper()
	testenv.RequireRoot(t)
	base := t.TempDir()
	dirs := map[string]string{}
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		dirs[d] = filepath.Join(base, d)
		if err := os.Mkdir(dirs[d], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	o := &overlay{
		lower:  &fsTree{t: t, root: dirs["lower"]},
		upper:  &fsTree{t: t, root: dirs["upper"]},
		merged: &fsTree{t: t, root: dirs["merged"]},
	}
	buildLower(o.lower)
	opts := "lowerdir=" + dirs["lower"] + ",upperdir=" + dirs["upper"] + ",workdir=" + dirs["work"]
	if err := unix.Mount("overlay", dirs["merged"], "overlay", 0, opts); err != nil {
		testenv.Unavailable(t, "overlayfs mount: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dirs["merged"], 0); err != nil {
			t.Errorf("unmount overlay: %v", err)
		}
	})
	return o
}

// countWhiteouts counts character devices 0/0 below dir with find.
func countWhiteouts(t testing.TB, dir string) int64 {
	t.Helper()
	out, err := exec.Command(testenv.RequireBinary(t, "find"), dir, "-type", "c", "-printf", `%D %Y %p\n`).Output()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l == "" {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(l[strings.LastIndex(l, " ")+1:], &st); err == nil && st.Rdev == 0 {
			n++
		}
	}
	return n
}

// TestScanRealOverlay writes, copies up and deletes through a mounted overlay and scans its
// upperdir while it is mounted, as the agent does, comparing with du on the same directory.
func TestScanRealOverlay(t *testing.T) {
	o := mountOverlay(t, func(l *fsTree) {
		l.file("etc/app.conf", 1000).file("var/log/old.log", 30000).dir("opt")
		for _, n := range []string{"a", "b", "c"} {
			l.file("usr/lib/"+n+".so", 10000)
			l.file("app/cache/"+n, 2000)
		}
	})
	m := o.merged
	m.file("opt/airflow/logs/scheduler/2026-11-25/task.log", 200<<10) // new, upper only
	m.appendTo("etc/app.conf", 10)                                    // copy-up
	m.remove("usr/lib/a.so").remove("usr/lib/b.so")                   // whiteouts
	m.remove("app/cache").file("app/cache/fresh", 500)                // opaque directory
	m.hardlink("opt/hardlink", "opt/airflow/logs/scheduler/2026-11-25/task.log")
	m.symlink("opt/escape", "../../../../etc/passwd")
	m.sparse("opt/disk.img", 1<<40)
	unix.Sync()

	u := mustScan(t, o.upper.root, Options{HotPaths: []string{"/opt/airflow/logs"}})
	assertMatchesDu(t, o.upper.root, u)
	if want := countWhiteouts(t, o.upper.root); u.Whiteouts != want || want < 2 {
		t.Errorf("Whiteouts = %d, find counts %d (want at least the 2 deleted libraries)", u.Whiteouts, want)
	}
	if u.OpaqueDirs != 1 {
		t.Errorf("OpaqueDirs = %d, want 1 (app/cache deleted and recreated)", u.OpaqueDirs)
	}
	if len(u.Errors) != 0 {
		t.Errorf("Errors = %q", u.Errors)
	}
	if h := u.HotPaths[0]; h.Files != 1 || h.ApparentBytes != 200<<10 {
		t.Errorf("hot path = %+v, want the one 200 KiB log", h)
	}
	var seen bool
	for _, d := range u.TopDirs {
		seen = seen || d.Path == "/opt/airflow/logs/scheduler/2026-11-25"
		if d.Path == "/" {
			t.Errorf("TopDirs lists %s: %+v", d.Path, u.TopDirs)
		}
	}
	if !seen {
		t.Errorf("TopDirs = %+v, want the log directory", u.TopDirs)
	}

	// The Scanner follows further writes through the mount.
	s := newTestScanner(t, o.upper.root, Options{})
	scanOnce(t, s)
	m.appendTo("opt/airflow/logs/scheduler/2026-11-25/task.log", 50000).
		remove("usr/lib/c.so").
		appendTo("var/log/old.log", 1)
	unix.Sync()
	inc := scanOnce(t, s)
	assertMatchesDu(t, o.upper.root, inc)
	if inc.Full {
		t.Error("second Scanner pass was full")
	}
}
