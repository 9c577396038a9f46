package scanner

import (
	"fmt"
	"path"
	"runtime"
	"strings"
	"time"
)

// Defaults applied by Scan and NewScanner to zero-valued Options fields.
const (
	DefaultTopN           = 5
	DefaultMaxDepthForTop = 6
	DefaultMaxTrackedDirs = 1 << 16
	DefaultMaxHardlinks   = 1 << 18
	DefaultMaxErrors      = 32
	DefaultFullEvery      = 10
	DefaultRecentWindow   = 15 * time.Minute
	DefaultLargeFileBytes = 64 << 20

	// maxWorkers bounds Options.Workers: more readers than this only add contention.
	maxWorkers = 256
	// defaultMaxOpenDirs bounds the directory descriptors a pass keeps open to open
	// children relative to their parent; beyond it children are opened by path from the root.
	defaultMaxOpenDirs = 256
)

// Options tunes a scan. The zero value is valid: every zero field takes its default.
type Options struct {
	// TopN is the number of directories returned in Usage.TopDirs (default 5).
	TopN int
	// HotPaths are container paths ("/opt/airflow/logs", or a file) reported in
	// Usage.HotPaths with exact figures, in order, whether or not they are among TopDirs.
	// A path that does not exist is reported with zero figures. Quoted paths (as reported for
	// names that are not printable UTF-8) are accepted too.
	HotPaths []string
	// MaxDepthForTop is the deepest container-path depth ("/a/b" has depth 2) at which
	// directories keep their own totals and can appear in TopDirs; deeper directories are
	// folded into their ancestor at this depth (default 6).
	MaxDepthForTop int
	// MaxTrackedDirs bounds how many directories keep their own totals for TopDirs (default
	// 65536). Beyond it, new directories fold into their nearest tracked ancestor, which keeps
	// every total exact and only makes TopDirs coarser; Usage.Errors says so.
	MaxTrackedDirs int
	// Workers is the number of directories read concurrently (default runtime.GOMAXPROCS(0)).
	Workers int
	// CPULimit caps CPU use during a pass, in cores (0.25 = a quarter of one core; 0 = no
	// cap). Every 256 entries or so each worker reads the process's CPU time (getrusage) and
	// pauses while the process has used more than CPULimit times the wall time elapsed since
	// the pass started. The whole process is measured, so the Go runtime's overhead counts,
	// other busy goroutines slow the pass down rather than exceed the cap, and concurrent
	// passes share one budget. Time waiting for the disk is not CPU. Workers still bounds the
	// parallelism.
	CPULimit float64
	// MaxHardlinks bounds how many hardlinked inodes (nlink > 1) are remembered at once to
	// count them once (default 262144, about 25 MiB at most). An inode is forgotten once all its
	// links were seen, unless they sit in several directories (to give each directory's
	// figures the inode once). If the table fills, further hardlinks may be counted more than
	// once and Usage.Errors says so.
	MaxHardlinks int
	// MaxErrors bounds Usage.Errors (default 32); one last line says how many were left out.
	MaxErrors int
	// Rescan tunes the Scanner's incremental passes; Scan ignores it.
	Rescan RescanPolicy
	// Now is the clock the Scanner compares file and directory ctimes with, to decide which
	// files changed recently and which directories changed too close to a pass to be trusted
	// on the next one (default time.Now).
	Now func() time.Time

	// maxOpenDirs overrides defaultMaxOpenDirs (tests force path-based opens with it).
	maxOpenDirs int
	// noOpenat2 makes the pass use openat with O_NOFOLLOW and mount checks instead of
	// openat2, as on kernels older than 5.6 (tests exercise that path with it).
	noOpenat2 bool
}

// RescanPolicy decides how much work a Scanner's later passes skip. A full pass stats every
// entry and is exact. An incremental pass re-reads (getdents and a stat per entry) only the
// directories whose ctime or mtime changed, and in the unchanged ones re-stats only the files
// that could have changed without touching their directory: files changed within RecentWindow
// before the previous pass, files at least LargeFileBytes big, hardlinked files and hot-path
// files. Figures of the other ("cold") files are carried over; a cold file written in place
// (the write does not change its directory) is seen at the next full pass at the latest.
// Usage.Full and Usage.CarriedEntries say which kind of pass produced a Usage.
type RescanPolicy struct {
	// FullEvery makes every FullEvery-th pass a full pass (default 10; 1 = every pass is full
	// and exact, with no saving).
	FullEvery int
	// RecentWindow is how recently a file must have changed (by its ctime, which a container
	// cannot set) to be re-stat'ed on every incremental pass (default 15 minutes).
	RecentWindow time.Duration
	// LargeFileBytes makes files with at least this many allocated or apparent bytes
	// re-stat'ed on every incremental pass (default 64 MiB).
	LargeFileBytes int64
}

// config is Options after defaults and validation.
type config struct {
	Options
	hot *hotNode
}

func (o Options) normalize() (*config, error) {
	c := &config{Options: o}
	switch {
	case o.TopN < 0:
		return nil, fmt.Errorf("TopN must not be negative, got %d", o.TopN)
	case o.MaxDepthForTop < 0:
		return nil, fmt.Errorf("MaxDepthForTop must not be negative, got %d", o.MaxDepthForTop)
	case o.MaxTrackedDirs < 0:
		return nil, fmt.Errorf("MaxTrackedDirs must not be negative, got %d", o.MaxTrackedDirs)
	case o.Workers < 0:
		return nil, fmt.Errorf("Workers must not be negative, got %d", o.Workers)
	case o.CPULimit < 0:
		return nil, fmt.Errorf("CPULimit must not be negative, got %g", o.CPULimit)
	case o.MaxHardlinks < 0:
		return nil, fmt.Errorf("MaxHardlinks must not be negative, got %d", o.MaxHardlinks)
	case o.MaxErrors < 0:
		return nil, fmt.Errorf("MaxErrors must not be negative, got %d", o.MaxErrors)
	case o.Rescan.FullEvery < 0:
		return nil, fmt.Errorf("Rescan.FullEvery must not be negative, got %d", o.Rescan.FullEvery)
	case o.Rescan.RecentWindow < 0:
		return nil, fmt.Errorf("Rescan.RecentWindow must not be negative, got %s", o.Rescan.RecentWindow)
	case o.Rescan.LargeFileBytes < 0:
		return nil, fmt.Errorf("Rescan.LargeFileBytes must not be negative, got %d", o.Rescan.LargeFileBytes)
	}
	if c.TopN == 0 {
		c.TopN = DefaultTopN
	}
	if c.MaxDepthForTop == 0 {
		c.MaxDepthForTop = DefaultMaxDepthForTop
	}
	if c.MaxTrackedDirs == 0 {
		c.MaxTrackedDirs = DefaultMaxTrackedDirs
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	c.Workers = min(c.Workers, maxWorkers)
	if c.MaxHardlinks == 0 {
		c.MaxHardlinks = DefaultMaxHardlinks
	}
	if c.MaxErrors == 0 {
		c.MaxErrors = DefaultMaxErrors
	}
	if c.Rescan.FullEvery == 0 {
		c.Rescan.FullEvery = DefaultFullEvery
	}
	if c.Rescan.RecentWindow == 0 {
		c.Rescan.RecentWindow = DefaultRecentWindow
	}
	if c.Rescan.LargeFileBytes == 0 {
		c.Rescan.LargeFileBytes = DefaultLargeFileBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.maxOpenDirs == 0 {
		c.maxOpenDirs = defaultMaxOpenDirs
	}
	c.HotPaths = append([]string(nil), o.HotPaths...)
	hot, err := buildHotTrie(c.HotPaths)
	if err != nil {
		return nil, err
	}
	c.hot = hot
	return c, nil
}

// hotNode is one step of the trie of hot paths: the walk carries the node matching the
// directory it reads, so matching a child costs one map lookup.
type hotNode struct {
	children map[string]*hotNode
	// idx are the indexes in Options.HotPaths of the paths that end here.
	idx []int
}

func buildHotTrie(paths []string) (*hotNode, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	root := &hotNode{}
	for i, p := range paths {
		raw, err := UnquotePath(p)
		if err != nil {
			return nil, fmt.Errorf("hot path %q: %w", p, err)
		}
		if !strings.HasPrefix(raw, "/") {
			return nil, fmt.Errorf("hot path %q: must be an absolute container path", p)
		}
		n := root
		for _, name := range strings.Split(path.Clean(raw), "/") {
			if name == "" {
				continue
			}
			child := n.children[name]
			if child == nil {
				child = &hotNode{}
				if n.children == nil {
					n.children = map[string]*hotNode{}
				}
				n.children[name] = child
			}
			n = child
		}
		n.idx = append(n.idx, i)
	}
	return root, nil
}
