//go:build linux

package scanner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/layerkeeper/layerkeeper/nodeagent/scanner/internal/benchgen"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// TestScanMatchesDu compares a realistic generated layer (deep trees, logs, hardlinks,
// symlinks, whiteouts, large and 1 TiB sparse files, awkward names) with du, under every
// way the walk can open directories.
func TestScanMatchesDu(t *testing.T) {
	testenv.RequireRoot(t)
	root := filepath.Join(t.TempDir(), "upper")
	if _, err := benchgen.Generate(root, benchgen.Spec{Entries: 6000, Seed: 7, Whiteouts: true, Big: true}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"defaults", Options{}},
		{"one worker", Options{Workers: 1}},
		{"eight workers", Options{Workers: 8}},
		{"no parent descriptors kept", Options{maxOpenDirs: -1}},
		{"no openat2", Options{maxOpenDirs: -1, noOpenat2: true}},
		{"cpu limited", Options{CPULimit: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := mustScan(t, root, tc.opts)
			assertMatchesDu(t, root, u)
			if len(u.Errors) != 0 {
				t.Errorf("Errors = %q", u.Errors)
			}
			if u.Whiteouts != 200 || !u.Full || u.CarriedEntries != 0 {
				t.Errorf("Whiteouts = %d, Full = %v, CarriedEntries = %d; want 200, true, 0", u.Whiteouts, u.Full, u.CarriedEntries)
			}
		})
	}
}

// TestScanEntryKinds counts each kind of entry a layer can hold.
func TestScanEntryKinds(t *testing.T) {
	testenv.RequireRoot(t)
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("shared with another directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	type counts struct{ Dirs, Files, Inodes, Whiteouts, OpaqueDirs, ApparentBytes int64 }
	for _, tc := range []struct {
		name  string
		build func(*fsTree)
		want  counts
	}{
		{"empty root", func(*fsTree) {}, counts{Dirs: 1, Inodes: 1}},
		{"files and dirs", func(f *fsTree) { f.file("a/b/c", 10).file("a/d", 5).dir("e") },
			counts{Dirs: 4, Files: 2, Inodes: 6, ApparentBytes: 15}},
		{"hardlinks inside counted once", func(f *fsTree) { f.file("a", 100).hardlink("b", "a").hardlink("d/c", "a") },
			counts{Dirs: 2, Files: 1, Inodes: 3, ApparentBytes: 100}},
		{"hardlink to a file outside counted once", func(f *fsTree) { f.hardlink("x", outside).hardlink("y", outside) },
			counts{Dirs: 1, Files: 1, Inodes: 2, ApparentBytes: int64(len("shared with another directory"))}},
		{"symlinks are entries, never followed", func(f *fsTree) {
			f.dir("real").file("real/big", 50000).
				symlink("loop", "loop").symlink("abs", "/etc").symlink("escape", "../../../../..").
				symlink("todir", "real").symlink("dangling", "nowhere")
		}, counts{Dirs: 2, Files: 6, Inodes: 8, ApparentBytes: 50000 + 4 + 4 + 14 + 4 + 7}},
		{"special files are counted, not opened", func(f *fsTree) {
			f.fifo("fifo").socket("sock").mknod("null", unix.S_IFCHR, 1, 3).mknod("blk", unix.S_IFBLK, 7, 0)
		}, counts{Dirs: 1, Files: 4, Inodes: 5}},
		{"whiteouts are entries, not data", func(f *fsTree) { f.whiteout("gone").whiteout("d/gone2") },
			counts{Dirs: 2, Whiteouts: 2, Inodes: 4}},
		{"opaque markers", func(f *fsTree) {
			f.dir("t").xattr("t", "trusted.overlay.opaque", "y").
				dir("u").xattr("u", "user.overlay.opaque", "y").
				dir("n").xattr("n", "trusted.overlay.opaque", "n").
				dir("other").xattr("other", "user.note", "y")
		}, counts{Dirs: 5, Inodes: 5, OpaqueDirs: 2}},
		{"1 TiB sparse file", func(f *fsTree) { f.sparse("disk.img", 1<<40) },
			counts{Dirs: 1, Files: 1, Inodes: 2, ApparentBytes: 1 << 40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tree(t)
			tc.build(f)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			u, err := Scan(ctx, f.root, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got := counts{u.Dirs, u.Files, u.Inodes, u.Whiteouts, u.OpaqueDirs, u.ApparentBytes}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
			if want := duBytes(t, f.root); u.Bytes != want {
				t.Errorf("Bytes = %d, du = %d", u.Bytes, want)
			}
			if len(u.Errors) != 0 {
				t.Errorf("Errors = %q", u.Errors)
			}
		})
	}
}

func TestScanSparseFileAllocatesLittle(t *testing.T) {
	f := tree(t).sparse("disk.img", 1<<40)
	u := mustScan(t, f.root, Options{})
	if u.ApparentBytes != 1<<40 || u.Bytes > 1<<20 {
		t.Errorf("ApparentBytes = %d, Bytes = %d; want 1 TiB apparent, under 1 MiB allocated", u.ApparentBytes, u.Bytes)
	}
}

// TestScanSkipsMountpoints mounts a tmpfs, a bind mount of a directory of the same
// filesystem and a bind mount over a file below the upperdir: none is entered or counted.
func TestScanSkipsMountpoints(t *testing.T) {
	testenv.RequireRoot(t)
	elsewhere := tree(t).file("big", 1<<20)
	f := tree(t).file("keep", 4096).dir("tmpfs").dir("bind").file("hosts", 0).file("bind-src/x", 10)
	before := mustScan(t, f.root, Options{})
	// The covered directories and file cannot be seen, so they are not counted either.
	covered := blocksOf(t, f.path("tmpfs")) + blocksOf(t, f.path("bind")) + blocksOf(t, f.path("hosts"))
	mount := func(src, target, fstype string, flags uintptr) {
		if err := unix.Mount(src, f.path(target), fstype, flags, ""); err != nil {
			t.Fatalf("mount %s on %s: %v", src, target, err)
		}
		t.Cleanup(func() { _ = unix.Unmount(f.path(target), unix.MNT_DETACH) })
	}
	mount("tmpfs", "tmpfs", "tmpfs", 0)
	if err := os.WriteFile(f.path("tmpfs/data"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	mount(elsewhere.root, "bind", "", unix.MS_BIND)
	mount(elsewhere.path("big"), "hosts", "", unix.MS_BIND)

	for _, opts := range []Options{{}, {maxOpenDirs: -1}, {noOpenat2: true, maxOpenDirs: -1}} {
		u := mustScan(t, f.root, opts)
		if want := before.Bytes - covered; u.Bytes != want {
			t.Errorf("Bytes = %d, want %d (before %d minus the covered mountpoints)", u.Bytes, want, before.Bytes)
		}
		if want := before.Inodes - 3; u.Inodes != want {
			t.Errorf("Inodes = %d, want %d", u.Inodes, want)
		}
		for _, p := range []string{"/tmpfs", "/bind", "/hosts"} {
			if !hasError(u, p+": mountpoint skipped") {
				t.Errorf("Errors = %q, want a note that %s was skipped", u.Errors, p)
			}
		}
	}
}

func TestScanAwkwardNames(t *testing.T) {
	nl, bad := "logs\nfake: entry", "\xff\xfebin"
	f := tree(t).file(nl+"/a", 1<<16).file(bad+"/b", 1<<15).file("plain/c", 100)
	u := mustScan(t, f.root, Options{HotPaths: []string{QuotePath("/" + nl), QuotePath("/" + bad)}})
	assertMatchesDu(t, f.root, u)
	want := []string{`"/logs\nfake: entry"`, `"/\xff\xfebin"`, "/plain"}
	var got []string
	for _, d := range u.TopDirs {
		got = append(got, d.Path)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TopDirs paths (-want +got):\n%s", diff)
	}
	for i, raw := range []string{"/" + nl, "/" + bad} {
		h := u.HotPaths[i]
		back, err := UnquotePath(h.Path)
		if err != nil || back != raw || h.Files != 1 {
			t.Errorf("HotPaths[%d] = %+v (unquoted %q, %v), want the quoted %q with 1 file", i, h, back, err, raw)
		}
	}
}

// TestScanDeepChain walks a 10,000-deep directory chain without recursion and without a
// descriptor per ancestor, and a deep chain whose paths exceed PATH_MAX by path-based opens.
func TestScanDeepChain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		depth int
		elem  string
		opts  Options
	}{
		{"10k deep, parent descriptors", 10000, "d", Options{}},
		{"300k-byte paths, opened by path in chunks", 1500, strings.Repeat("p", 200), Options{maxOpenDirs: -1}},
		{"300k-byte paths without openat2", 400, strings.Repeat("q", 200), Options{maxOpenDirs: -1, noOpenat2: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			t.Cleanup(func() { rmrf(t, filepath.Join(root, tc.elem)) })
			fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.depth {
				if err := unix.Mkdirat(fd, tc.elem, 0o755); err != nil {
					t.Fatal(err)
				}
				next, err := unix.Openat(fd, tc.elem, unix.O_RDONLY|unix.O_DIRECTORY, 0)
				if err != nil {
					t.Fatal(err)
				}
				unix.Close(fd)
				fd = next
				if i%1000 == 999 {
					if err := os.WriteFile(fmt.Sprintf("/proc/self/fd/%d/f", fd), []byte("x"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			unix.Close(fd)

			base := openFDs(t)
			var maxFDs atomic.Int64
			testHookAfterList = func(string) {
				if n := int64(openFDs(t)); n > maxFDs.Load() {
					maxFDs.Store(n)
				}
			}
			t.Cleanup(func() { testHookAfterList = nil })
			u := mustScan(t, root, tc.opts)
			testHookAfterList = nil
			if u.Dirs != int64(tc.depth)+1 || u.Files != int64(tc.depth/1000) {
				t.Errorf("Dirs = %d, Files = %d; want %d, %d", u.Dirs, u.Files, tc.depth+1, tc.depth/1000)
			}
			if want := duBytes(t, root); u.Bytes != want {
				t.Errorf("Bytes = %d, du = %d", u.Bytes, want)
			}
			// ReadDir of /proc/self/fd holds one more; each worker holds at most two.
			if extra := maxFDs.Load() - int64(base); extra > int64(2*runtimeWorkers()+4) {
				t.Errorf("up to %d descriptors open beyond the %d before the scan", extra, base)
			}
		})
	}
}

func runtimeWorkers() int {
	c, _ := Options{}.normalize()
	return c.Workers
}

func TestScanWideDirectory(t *testing.T) {
	const n = 100000
	root := t.TempDir()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for i := range n {
		f, err := unix.Openat(fd, fmt.Sprintf("f%06d", i), unix.O_CREAT|unix.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(f)
	}
	u := mustScan(t, root, Options{})
	if u.Files != n || u.Dirs != 1 {
		t.Errorf("Files = %d, Dirs = %d; want %d, 1", u.Files, u.Dirs, n)
	}
	assertMatchesDu(t, root, u)
}

// TestScanVanishingEntries deletes files and directories after they were listed and before
// they are stat'ed or opened.
func TestScanVanishingEntries(t *testing.T) {
	f := tree(t)
	for i := range 20 {
		f.file(fmt.Sprintf("d/f%d", i), 100).file(fmt.Sprintf("d/sub%d/x", i), 100)
	}
	var once sync.Once
	testHookAfterList = func(p string) {
		if p != "/d" {
			return
		}
		once.Do(func() {
			for i := range 20 {
				if i%2 == 0 {
					f.remove(fmt.Sprintf("d/f%d", i)).remove(fmt.Sprintf("d/sub%d", i))
				}
			}
		})
	}
	t.Cleanup(func() { testHookAfterList = nil })
	u := mustScan(t, f.root, Options{Workers: 1})
	testHookAfterList = nil
	assertMatchesDu(t, f.root, u)
	if !hasError(u, "/d/f0: vanished during the scan") || !hasError(u, "/d/sub0: vanished or replaced during the scan") {
		t.Errorf("Errors = %q, want vanished entries noted", u.Errors)
	}
}

// TestScanConcurrentChurn scans while another goroutine creates, renames and deletes files
// and directories: no error, no panic, plausible figures.
func TestScanConcurrentChurn(t *testing.T) {
	f := tree(t)
	for i := range 50 {
		f.file(fmt.Sprintf("stable/%d/f", i), 4096)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			d := f.path(fmt.Sprintf("churn/%d", i%30))
			_ = os.MkdirAll(d+"/deep/er", 0o755)
			_ = os.WriteFile(d+"/deep/er/f", []byte("data"), 0o644)
			_ = os.Rename(d, d+".moved")
			_ = os.RemoveAll(d + ".moved")
		}
	})
	for range 30 {
		u, err := Scan(context.Background(), f.root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if u.Files < 50 || u.Bytes < 50*4096 {
			t.Errorf("Files = %d, Bytes = %d; the stable part alone has 50 files of 4 KiB", u.Files, u.Bytes)
		}
	}
	cancel()
	wg.Wait()
}

// TestScanUnreadableDirectory scans as an unprivileged user (root bypasses permissions;
// chattr +i does not stop reading) a layer with a directory it may not read, and compares
// with du run as the same user.
func TestScanUnreadableDirectory(t *testing.T) {
	testenv.RequireRoot(t)
	const nobody = 65534
	scratch, err := os.MkdirTemp("", "scanner-eacces-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rmrf(t, scratch) })
	root := filepath.Join(scratch, "upper")
	for _, d := range []string{"upper/open", "upper/locked/inner"} {
		if err := os.MkdirAll(filepath.Join(scratch, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"upper/open/f", "upper/locked/g", "upper/locked/inner/h"} {
		if err := os.WriteFile(filepath.Join(scratch, p), make([]byte, 10000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The test binary sits in a 0700 build directory: copy it where nobody can run it.
	bin := filepath.Join(scratch, "scanner.test")
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{scratch, root} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "locked"), 0o000); err != nil {
		t.Fatal(err)
	}
	cred := &syscall.Credential{Uid: nobody, Gid: nobody}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), childScanEnv+"="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scan as nobody: %v", err)
	}
	var u Usage
	if err := json.Unmarshal(out, &u); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if want := du(t, cred, root, "-sB1"); u.Bytes != want {
		t.Errorf("Bytes = %d, du as nobody = %d", u.Bytes, want)
	}
	if u.Dirs != 3 || u.Files != 1 {
		t.Errorf("Dirs = %d, Files = %d; want 3 (root, open, locked) and 1", u.Dirs, u.Files)
	}
	if !hasError(u, "/locked: open directory: permission denied") {
		t.Errorf("Errors = %q, want /locked noted as unreadable", u.Errors)
	}
}

func TestScanCancel(t *testing.T) {
	f := tree(t)
	for i := range 200 {
		f.file(fmt.Sprintf("d%d/f", i), 10)
	}
	t.Run("before the scan", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Scan(ctx, f.root, Options{}); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("during the scan", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var listed atomic.Int64
		testHookAfterList = func(string) {
			if listed.Add(1) == 5 {
				cancel()
			}
		}
		t.Cleanup(func() { testHookAfterList = nil })
		_, err := Scan(ctx, f.root, Options{Workers: 1})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if n := listed.Load(); n > 6 {
			t.Errorf("%d directories listed after cancelling at the 5th", n)
		}
	})
	t.Run("while paced by the CPU limit", func(t *testing.T) {
		// A millionth of a core would take hours: the pass sleeps in the limiter when the
		// cancellation comes and must wake up for it.
		big := tree(t)
		for i := range 500 {
			for j := range 20 {
				big.file(fmt.Sprintf("d%d/f%d", i, j), 0)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		var once sync.Once
		testHookAfterList = func(string) { once.Do(func() { time.AfterFunc(100*time.Millisecond, cancel) }) }
		t.Cleanup(func() { testHookAfterList = nil })
		done := make(chan error, 1)
		go func() {
			_, err := Scan(ctx, big.root, Options{CPULimit: 1e-6})
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Scan did not return after its context was cancelled")
		}
	})
}

func TestScanRootErrors(t *testing.T) {
	f := tree(t).file("file", 1).dir("dir").symlink("link", "dir")
	for _, tc := range []struct{ name, path, want string }{
		{"missing", f.path("missing"), "no such file or directory"},
		{"a file", f.path("file"), "not a directory"},
		{"a symlink", f.path("link"), "not a directory"}, // O_NOFOLLOW|O_DIRECTORY
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Scan(context.Background(), tc.path, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestScanInvalidOptions(t *testing.T) {
	dir := t.TempDir()
	for _, opts := range []Options{
		{TopN: -1}, {MaxDepthForTop: -1}, {MaxTrackedDirs: -1}, {Workers: -1}, {CPULimit: -0.5},
		{MaxHardlinks: -1}, {MaxErrors: -1}, {Rescan: RescanPolicy{FullEvery: -1}},
		{Rescan: RescanPolicy{RecentWindow: -1}}, {Rescan: RescanPolicy{LargeFileBytes: -1}},
		{HotPaths: []string{"relative/path"}}, {HotPaths: []string{`"/unterminated`}},
	} {
		if _, err := Scan(context.Background(), dir, opts); err == nil {
			t.Errorf("Scan with %+v: no error", opts)
		}
		if _, err := NewScanner(dir, opts); err == nil {
			t.Errorf("NewScanner with %+v: no error", opts)
		}
	}
}

func TestScanBoundedLists(t *testing.T) {
	f := tree(t)
	for i := range 6 {
		f.file(fmt.Sprintf("src/a%d", i), 10).hardlink(fmt.Sprintf("dst/b%d", i), fmt.Sprintf("src/a%d", i))
	}
	for i := range 5 {
		f.dir(fmt.Sprintf("more/%d", i))
	}
	exact := mustScan(t, f.root, Options{})
	if exact.Files != 6 {
		t.Fatalf("Files = %d with the default bounds, want 6", exact.Files)
	}
	u := mustScan(t, f.root, Options{MaxHardlinks: 2, MaxErrors: 1, MaxTrackedDirs: 3, Workers: 1})
	// Two inodes are remembered while the first directory is read; the other four are
	// counted again when their second link is met.
	if u.Files != 10 || u.Bytes <= exact.Bytes {
		t.Errorf("Files = %d, Bytes = %d; want 10 and more than the exact %d once the hardlink table overflows", u.Files, u.Bytes, exact.Bytes)
	}
	// Two problems (the hardlink table and the top-directory tree overflowed), one listed.
	if len(u.Errors) != 2 || !strings.HasPrefix(u.Errors[1], "and 1 more problems") {
		t.Errorf("Errors = %q, want one problem and a count of the rest", u.Errors)
	}
}
