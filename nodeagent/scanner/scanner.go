package scanner

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Scan measures the upperdir once, examining every entry (Usage.Full is true). It returns an
// error only when the upperdir itself cannot be read, the options are invalid or ctx is done
// (then the error is ctx.Err()); problems below the root are listed in Usage.Errors.
// upperDir must be a directory, not a symlink to one.
func Scan(ctx context.Context, upperDir string, opts Options) (Usage, error) {
	cfg, err := opts.normalize()
	if err != nil {
		return Usage{}, fmt.Errorf("scan %s: %w", upperDir, err)
	}
	return runPass(ctx, upperDir, cfg, nil, true, 1)
}

// Scanner measures the same upperdir repeatedly and cheaply. It remembers, per directory,
// the directory's inode and ctime, the totals of its "cold" files and the names of its
// subdirectories and of the files it must re-stat; see RescanPolicy for what a pass skips.
// Its memory grows with the number of directories and of recently changed files, not with the
// number of files. A Scanner serializes its passes; it is safe for concurrent use.
type Scanner struct {
	dir string
	cfg *config

	mu     sync.Mutex
	cache  *cacheTable
	passes int    // completed passes
	gen    uint32 // pass attempts, to tell this pass's cache claims from older ones
}

// NewScanner returns a Scanner for upperDir. It does not touch the filesystem.
func NewScanner(upperDir string, opts Options) (*Scanner, error) {
	cfg, err := opts.normalize()
	if err != nil {
		return nil, fmt.Errorf("scanner for %s: %w", upperDir, err)
	}
	return &Scanner{dir: upperDir, cfg: cfg, cache: &cacheTable{m: map[uint64]*dirCache{}}}, nil
}

// Scan runs one pass: a full pass the first time and every Rescan.FullEvery-th time, an
// incremental one otherwise. Errors are those of the package-level Scan; a failed or
// cancelled pass leaves the Scanner usable and the next pass counts as if it had not run.
func (s *Scanner) Scan(ctx context.Context) (Usage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	full := s.passes%s.cfg.Rescan.FullEvery == 0
	u, err := runPass(ctx, s.dir, s.cfg, s.cache, full, s.gen)
	if err != nil {
		return Usage{}, err
	}
	s.passes++
	s.cache.prune(s.gen)
	return u, nil
}

// dirCache is what a Scanner remembers of one directory between passes, kept compact: a
// Scanner holds one per directory of the layer.
type dirCache struct {
	ino uint64
	// ctime (ns) changes whenever an entry is added, removed or renamed, and cannot be set.
	ctime int64
	// gen is the pass that last claimed the entry; a directory met twice in one pass (moved
	// during the pass) is read again, uncached, the second time.
	gen uint32
	// valid is false until a full read of the directory completed.
	valid bool
	// racy is set when the directory changed so close to the read that a later change could
	// keep the same ctime (coarse clocks): the next pass re-reads it.
	racy   bool
	opaque bool
	// cold totals the direct non-directory children not listed in tracked.
	cold coldTotals
	// tracked are the files re-stat'ed on every pass, subdirs the subdirectories: names,
	// each NUL-terminated, concatenated in one string.
	tracked, subdirs string
	// subInos are the inode numbers of subdirs, in the same order.
	subInos []uint64
}

// coldTotals is the figure of files carried over between passes. They are never hardlinks
// (those are always re-stat'ed), so each is one inode.
type coldTotals struct {
	bytes, apparent  int64
	files, whiteouts uint32
}

func (c *coldTotals) add(t totals) {
	c.bytes += t.bytes
	c.apparent += t.apparent
	c.files += uint32(t.files)
	c.whiteouts += uint32(t.whiteouts)
}

func (c coldTotals) totals() totals {
	n := int64(c.files) + int64(c.whiteouts)
	return totals{bytes: c.bytes, apparent: c.apparent, inodes: n, files: int64(c.files), whiteouts: int64(c.whiteouts)}
}

// nextName splits the first NUL-terminated name (with its NUL) off a list of names.
func nextName(list string) (nameZ, rest string) {
	i := strings.IndexByte(list, 0)
	if i < 0 {
		return "", ""
	}
	return list[:i+1], list[i+1:]
}

// subdirRef names a subdirectory and the inode its directory entry carried.
type subdirRef struct {
	nameZ string // NUL-terminated
	ino   uint64
}

func (s subdirRef) name() string { return s.nameZ[:len(s.nameZ)-1] }

// cacheTable maps directory inode numbers (one filesystem: the upperdir's) to their cache.
type cacheTable struct {
	mu sync.Mutex
	m  map[uint64]*dirCache
}

// claim returns the cache entry of a directory for this pass, and whether its remembered
// content may be reused. It returns nil when the directory was already met in this pass.
func (c *cacheTable) claim(ino uint64, ctime int64, gen uint32, full bool) (*dirCache, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[ino]
	if e == nil {
		e = &dirCache{ino: ino}
		c.m[ino] = e
	} else if e.gen == gen {
		return nil, false
	}
	e.gen = gen
	reuse := !full && e.valid && !e.racy && e.ctime == ctime
	return e, reuse
}

// claimLeaf claims, for this pass, the cache entry of a directory that has no
// subdirectories and no file to re-stat, if it is unchanged: then the pass counts it from the
// cache without opening it. It returns nil otherwise.
func (c *cacheTable) claimLeaf(ino uint64, ctime int64, gen uint32) *dirCache {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[ino]
	if e == nil || e.gen == gen || !e.valid || e.racy || e.ctime != ctime ||
		len(e.subdirs) > 0 || len(e.tracked) > 0 {
		return nil
	}
	e.gen = gen
	return e
}

// maybeLeaf reports, without claiming it, whether the directory with this inode was an
// unchanged-so-far leaf at the last pass, so that stat'ing it from its parent may save
// opening it.
func (c *cacheTable) maybeLeaf(ino uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[ino]
	return e != nil && e.valid && !e.racy && len(e.subdirs) == 0 && len(e.tracked) == 0
}

// prune forgets the directories the last pass did not meet.
func (c *cacheTable) prune(gen uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ino, e := range c.m {
		if e.gen != gen {
			delete(c.m, ino)
		}
	}
}
