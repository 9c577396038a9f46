//go:build linux

package scanner

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// synthTree turns {"/a/b": 10} (bytes each directory holds itself) into selectTop's input.
func synthTree(own map[string]int64) (paths []string, parents []int32, bytes []int64) {
	set := map[string]bool{"/": true}
	for p := range own {
		for ; p != "/"; p = p[:max(strings.LastIndex(p, "/"), 1)] {
			set[p] = true
		}
	}
	for p := range set {
		paths = append(paths, p)
	}
	slices.Sort(paths) // a parent sorts before its children
	index := map[string]int32{}
	for i, p := range paths {
		index[p] = int32(i)
		parent := int32(-1)
		if p != "/" {
			parent = index[p[:max(strings.LastIndex(p, "/"), 1)]]
		}
		parents = append(parents, parent)
		bytes = append(bytes, own[p])
	}
	return paths, parents, bytes
}

func TestSelectTop(t *testing.T) {
	airflow := map[string]int64{
		"/opt/airflow/logs/scheduler/2026-11-25": 5000,
		"/opt/airflow/logs/scheduler/2026-11-24": 100,
		"/opt/airflow/logs/scheduler/2026-11-23": 100,
		"/opt/airflow/logs/scheduler/2026-11-22": 100,
		"/usr/lib/x":                             500,
	}
	cache := map[string]int64{"/big": 100}
	for i := range 256 {
		cache[fmt.Sprintf("/var/cache/app/%02x", i)] = 10
	}
	for _, tc := range []struct {
		name string
		own  map[string]int64
		n    int
		want []string
	}{
		{"the dominant leaf, not its ancestors", airflow, 1, []string{"/opt/airflow/logs/scheduler/2026-11-25"}},
		{"a parent of small dated dirs beside the big one", airflow, 3,
			[]string{"/opt/airflow/logs/scheduler", "/opt/airflow/logs/scheduler/2026-11-25", "/usr/lib/x"}},
		{"every leaf when there is room", airflow, 10, []string{
			"/opt/airflow/logs/scheduler/2026-11-22", "/opt/airflow/logs/scheduler/2026-11-23",
			"/opt/airflow/logs/scheduler/2026-11-24", "/opt/airflow/logs/scheduler/2026-11-25", "/usr/lib/x"}},
		{"many small siblings roll up into their parent", cache, 2, []string{"/big", "/var/cache/app"}},
		{"a parent with bytes of its own beside its child", map[string]int64{"/a": 1000, "/a/b": 1000}, 2, []string{"/a", "/a/b"}},
		{"one slot: the parent covering both", map[string]int64{"/a": 1000, "/a/b": 1000}, 1, []string{"/a"}},
		{"the root is never listed", map[string]int64{"/": 1 << 30, "/a": 10}, 5, []string{"/a"}},
		{"empty directories are never listed", map[string]int64{"/a": 0, "/b": 0}, 5, nil},
		{"no slot", airflow, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			paths, parents, own := synthTree(tc.own)
			var got []string
			for _, i := range selectTop(parents, own, tc.n) {
				got = append(got, paths[i])
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("selectTop (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTopDirsOnDisk checks the rule on a real tree, folding below MaxDepthForTop, the
// order of the result and that its figures are those of du on each directory.
func TestTopDirsOnDisk(t *testing.T) {
	f := tree(t)
	f.file("opt/airflow/logs/scheduler/2026-11-25/dag/task/attempt/deep/f1", 400<<10).
		file("opt/airflow/logs/scheduler/2026-11-25/dag/task/attempt/deep/f2", 400<<10)
	for i := range 20 {
		f.file(fmt.Sprintf("opt/airflow/logs/scheduler/2026-10-%02d/f", i+1), 8<<10)
	}
	f.file("usr/lib/python3/site-packages/numpy/core/big.so", 200<<10).file("etc/hosts", 10)

	u := mustScan(t, f.root, Options{TopN: 3, MaxDepthForTop: 5})
	want := []string{
		"/opt/airflow/logs/scheduler",
		"/opt/airflow/logs/scheduler/2026-11-25",
		"/usr/lib/python3/site-packages/numpy",
	}
	var got []string
	for _, d := range u.TopDirs {
		got = append(got, d.Path)
		rel := strings.TrimPrefix(d.Path, "/")
		if b := duBytes(t, f.path(rel)); d.Bytes != b {
			t.Errorf("%s: Bytes = %d, du = %d", d.Path, d.Bytes, b)
		}
		if n := countFiles(t, f.path(rel)); d.Files != n {
			t.Errorf("%s: Files = %d, find = %d", d.Path, d.Files, n)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TopDirs (-want +got):\n%s", diff)
	}

	// With a bound of 4 tracked directories the figures stay exact, TopDirs coarser.
	c := mustScan(t, f.root, Options{MaxTrackedDirs: 4})
	if c.Bytes != u.Bytes || !hasError(c, "directories: deeper ones folded") {
		t.Errorf("capped: Bytes = %d (want %d), Errors = %q", c.Bytes, u.Bytes, c.Errors)
	}
}

func countFiles(t testing.TB, dir string) int64 {
	t.Helper()
	out, err := exec.Command(testenv.RequireBinary(t, "find"), dir, "!", "-type", "d", "-printf", "x").Output()
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(out))
}

func TestHotPaths(t *testing.T) {
	f := tree(t).
		file("opt/airflow/logs/scheduler/2026-11-25/dag/task/a.log", 100<<10).
		file("opt/airflow/logs/scheduler/2026-11-25/dag/task/b.log", 10<<10).
		file("opt/airflow/logs/other.log", 5<<10).
		file("var/log/app.log", 3000)
	hot := []string{
		"/opt/airflow/logs/scheduler/2026-11-25/dag/task", // deeper than MaxDepthForTop
		"/var/log/app.log", // a file
		"/nonexistent/path",
		"/opt/airflow/logs",
		"/opt/airflow/logs/", // same directory, spelled differently
		"/",
	}
	u := mustScan(t, f.root, Options{HotPaths: hot, MaxDepthForTop: 2})
	dirFigures := func(rel string) DirUsage {
		return DirUsage{Bytes: duBytes(t, f.path(rel)), ApparentBytes: duApparentFiles(t, f.path(rel)), Files: countFiles(t, f.path(rel))}
	}
	logs := dirFigures("opt/airflow/logs")
	want := []DirUsage{
		dirFigures("opt/airflow/logs/scheduler/2026-11-25/dag/task"),
		{Bytes: blocksOf(t, f.path("var/log/app.log")), ApparentBytes: 3000, Files: 1},
		{},
		logs,
		logs,
		{Bytes: u.Bytes, ApparentBytes: u.ApparentBytes, Files: u.Files},
	}
	for i := range want {
		want[i].Path = hot[i]
	}
	if diff := cmp.Diff(want, u.HotPaths); diff != "" {
		t.Errorf("HotPaths (-want +got):\n%s", diff)
	}
}

func TestQuotePath(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"/opt/airflow/logs", "/opt/airflow/logs"},
		{"/données/журнал", "/données/журнал"},
		{"/with space", "/with space"},
		{"/a\nb", `"/a\nb"`},
		{"/tab\there", `"/tab\there"`},
		{"/\xff", `"/\xff"`},
		{`"/looks-quoted"`, `"\"/looks-quoted\""`},
		{"/esc\x1b[31m", `"/esc\x1b[31m"`},
	} {
		got := QuotePath(tc.raw)
		if got != tc.want {
			t.Errorf("QuotePath(%q) = %s, want %s", tc.raw, got, tc.want)
		}
		back, err := UnquotePath(got)
		if err != nil || back != tc.raw {
			t.Errorf("UnquotePath(%s) = %q, %v; want %q", got, back, err, tc.raw)
		}
	}
}

func FuzzQuotePath(f *testing.F) {
	for _, s := range []string{"/a", "/a\nb", "/\xff\xfe", `"x`, "/\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q := QuotePath(raw)
		if strings.ContainsAny(q, "\n\r") || !strconv.CanBackquote(strings.ReplaceAll(q, "`", "")) {
			t.Fatalf("QuotePath(%q) = %q is not one printable line", raw, q)
		}
		back, err := UnquotePath(q)
		if err != nil || back != raw {
			t.Fatalf("UnquotePath(QuotePath(%q)) = %q, %v", raw, back, err)
		}
	})
}

// TestDirFiguresCountHardlinksLikeDu checks that each directory's figure counts a hardlinked
// inode as `du <dir>` does (once if any link is below it) and that TopDirs does not depend on
// which link the parallel walk met first.
func TestDirFiguresCountHardlinksLikeDu(t *testing.T) {
	f := tree(t).file("a/x", 300<<10).hardlink("a/w", "a/x").hardlink("b/y", "a/x").hardlink("b/c/z", "a/x")
	for i := range 30 {
		f.file(fmt.Sprintf("b/pad%d/f", i), 10)
	}
	dirs := []string{"/a", "/b", "/b/c", "/"}
	for range 20 {
		u := mustScan(t, f.root, Options{HotPaths: dirs, Workers: 4, TopN: 1})
		for i, d := range dirs {
			if want := duBytes(t, f.path(strings.TrimPrefix(d, "/"))); u.HotPaths[i].Bytes != want {
				t.Fatalf("%s: Bytes = %d, du = %d", d, u.HotPaths[i].Bytes, want)
			}
		}
		if len(u.TopDirs) != 1 || u.TopDirs[0].Path != "/b/c" {
			t.Fatalf("TopDirs = %+v, want the deepest directory holding the hardlinked file", u.TopDirs)
		}
	}
}
