//go:build linux

package scanner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func newTestScanner(t testing.TB, dir string, opts Options) *Scanner {
	t.Helper()
	s, err := NewScanner(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func scanOnce(t testing.TB, s *Scanner) Usage {
	t.Helper()
	u, err := s.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// layerTree is a small layer with leaf and inner directories, hardlinks across directories
// and whiteouts.
func layerTree(t testing.TB) *fsTree {
	f := tree(t)
	for i := range 10 {
		for j := range 5 {
			f.file(fmt.Sprintf("usr/lib/pkg%d/mod%d/f.py", i, j), 1000*(i+1))
		}
		f.file(fmt.Sprintf("var/log/app/2026-11-%02d/app.log", i+1), 5000)
	}
	f.file("data/shared", 8000).hardlink("usr/lib/pkg0/link", "data/shared").hardlink("var/log/link", "data/shared")
	return f
}

// TestScannerIncrementalFollowsDirectoryChanges changes directories in every way a
// container can (create, delete, rename, new subdirectories, hardlinks, whiteouts) between
// passes: incremental passes stay equal to du while carrying the unchanged files over.
func TestScannerIncrementalFollowsDirectoryChanges(t *testing.T) {
	f := layerTree(t)
	s := newTestScanner(t, f.root, Options{Now: laterClock()})
	first := scanOnce(t, s)
	if !first.Full {
		t.Fatal("first pass not full")
	}
	assertMatchesDu(t, f.root, first)

	steps := []struct {
		name   string
		change func()
	}{
		{"no change", func() {}},
		{"new file in a leaf", func() { f.file("usr/lib/pkg3/mod1/new.py", 70000) }},
		{"deleted file", func() { f.remove("usr/lib/pkg4/mod2/f.py") }},
		{"new subdirectory under a leaf", func() { f.file("var/log/app/2026-11-02/sub/x.log", 30000) }},
		{"renamed directory", func() {
			if err := os.Rename(f.path("usr/lib/pkg5"), f.path("usr/lib/pkg5-moved")); err != nil {
				t.Fatal(err)
			}
		}},
		{"deleted directory tree", func() { f.remove("usr/lib/pkg6") }},
		{"new hardlink in another leaf", func() { f.hardlink("usr/lib/pkg7/mod0/link", "data/shared") }},
		{"hardlink removed", func() { f.remove("var/log/link") }},
		{"file replaced by a directory", func() { f.remove("usr/lib/pkg8/mod0/f.py").dir("usr/lib/pkg8/mod0/f.py/inner") }},
	}
	for _, st := range steps {
		st.change()
		u := scanOnce(t, s)
		t.Run(st.name, func(t *testing.T) {
			assertMatchesDu(t, f.root, u)
			if u.Full || u.CarriedEntries == 0 {
				t.Errorf("Full = %v, CarriedEntries = %d; want an incremental pass carrying entries over", u.Full, u.CarriedEntries)
			}
			if len(u.Errors) != 0 {
				t.Errorf("Errors = %q", u.Errors)
			}
		})
	}
}

// TestScannerRestatsRecentAndLargeFiles appends in place (the directory does not change)
// to files the policy re-stats on every pass: recently changed files and large files.
func TestScannerRestatsRecentAndLargeFiles(t *testing.T) {
	t.Run("recently changed", func(t *testing.T) {
		f := layerTree(t)
		// The real clock: the fresh tree changed within RecentWindow.
		s := newTestScanner(t, f.root, Options{})
		scanOnce(t, s)
		f.appendTo("var/log/app/2026-11-03/app.log", 100000)
		assertMatchesDu(t, f.root, scanOnce(t, s))
	})
	t.Run("large", func(t *testing.T) {
		f := layerTree(t)
		s := newTestScanner(t, f.root, Options{Now: laterClock(), Rescan: RescanPolicy{LargeFileBytes: 8000}})
		scanOnce(t, s)
		f.appendTo("usr/lib/pkg9/mod0/f.py", 100000) // 10000 bytes: large
		f.appendTo("data/shared", 100000)            // hardlinked: always re-stat'ed
		u := scanOnce(t, s)
		assertMatchesDu(t, f.root, u)
		if u.Full {
			t.Error("second pass was full")
		}
	})
}

// TestScannerColdInPlaceWriteSeenAtFullPass documents the trade-off: a small file that had
// not changed for RecentWindow, then is written in place, is carried over with its old size
// by incremental passes and counted exactly again at the next full pass.
func TestScannerColdInPlaceWriteSeenAtFullPass(t *testing.T) {
	f := layerTree(t)
	s := newTestScanner(t, f.root, Options{Now: laterClock(), Rescan: RescanPolicy{FullEvery: 3}})
	before := scanOnce(t, s) // full
	f.appendTo("usr/lib/pkg1/mod1/f.py", 100000)
	stale := scanOnce(t, s) // incremental
	if stale.Full || stale.Bytes != before.Bytes {
		t.Errorf("incremental pass: Full = %v, Bytes = %d; want the carried-over %d", stale.Full, stale.Bytes, before.Bytes)
	}
	scanOnce(t, s)          // incremental
	exact := scanOnce(t, s) // the third pass after the first full one: full again
	if !exact.Full {
		t.Error("fourth pass not full with FullEvery 3")
	}
	assertMatchesDu(t, f.root, exact)
}

// TestScannerRacyDirectoriesAreReread checks that directories that changed right before a
// pass (with the real clock) are read again next time instead of trusted.
func TestScannerRacyDirectoriesAreReread(t *testing.T) {
	f := layerTree(t)
	s := newTestScanner(t, f.root, Options{})
	scanOnce(t, s)
	u := scanOnce(t, s)
	if u.Full || u.CarriedEntries != 0 {
		t.Errorf("Full = %v, CarriedEntries = %d; want an incremental pass that re-read everything", u.Full, u.CarriedEntries)
	}
	assertMatchesDu(t, f.root, u)
}

func TestScannerFullEveryOne(t *testing.T) {
	f := layerTree(t)
	s := newTestScanner(t, f.root, Options{Now: laterClock(), Rescan: RescanPolicy{FullEvery: 1}})
	for range 3 {
		if u := scanOnce(t, s); !u.Full || u.CarriedEntries != 0 {
			t.Errorf("Full = %v, CarriedEntries = %d; want every pass full", u.Full, u.CarriedEntries)
		}
	}
}

// TestScannerSurvivesCancelledPass cancels passes in the middle (the first, full one and an
// incremental one); the passes after them are exact and the cancelled ones do not count.
func TestScannerSurvivesCancelledPass(t *testing.T) {
	f := layerTree(t)
	s := newTestScanner(t, f.root, Options{Now: laterClock(), Workers: 1})
	cancelAtListing := func(n int64) error {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var listed atomic.Int64
		testHookAfterList = func(string) {
			if listed.Add(1) == n {
				cancel()
			}
		}
		defer func() { testHookAfterList = nil }()
		_, err := s.Scan(ctx)
		return err
	}
	if err := cancelAtListing(5); !errors.Is(err, context.Canceled) {
		t.Fatalf("first pass: err = %v, want context.Canceled", err)
	}
	if u := scanOnce(t, s); !u.Full {
		t.Error("the pass after a cancelled first pass was not full")
	}
	f.file("usr/lib/pkg2/mod3/new", 12345)
	if err := cancelAtListing(1); !errors.Is(err, context.Canceled) {
		t.Fatalf("incremental pass: err = %v, want context.Canceled", err)
	}
	f.remove("var/log/app/2026-11-04")
	u := scanOnce(t, s)
	assertMatchesDu(t, f.root, u)
	if u.Full {
		t.Error("pass 3 was full; a cancelled pass must not count")
	}
}

func TestScannerHotPathsAndTopDirsIncremental(t *testing.T) {
	f := layerTree(t)
	opts := Options{Now: laterClock(), HotPaths: []string{"/var/log/app", "/var/log/app/2026-11-05/app.log"}}
	s := newTestScanner(t, f.root, opts)
	scanOnce(t, s)
	f.file("var/log/app/2026-11-05/more.log", 40000)
	inc := scanOnce(t, s)
	full := mustScan(t, f.root, opts)
	inc.Full, inc.CarriedEntries = true, 0
	if fmt.Sprint(inc) != fmt.Sprint(full) {
		t.Errorf("incremental pass differs from a full scan:\n got %+v\nwant %+v", inc, full)
	}
}

func TestScannerConcurrentUse(t *testing.T) {
	f := layerTree(t)
	s := newTestScanner(t, f.root, Options{Now: laterClock()})
	want := scanOnce(t, s).Bytes
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			u, err := s.Scan(context.Background())
			if err == nil && u.Bytes != want {
				err = fmt.Errorf("Bytes = %d, want %d", u.Bytes, want)
			}
			errs <- err
		}()
	}
	for range 4 {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("concurrent passes did not finish")
		}
	}
}
