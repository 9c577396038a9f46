//go:build linux

package scanner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// direntBufSize is each worker's reused getdents buffer.
	direntBufSize = 32 << 10
	// checkEvery is how much work (entries, dirUnits per directory) a worker does between
	// checks of the CPU budget (a getrusage each).
	checkEvery = 256
	// dirUnits weighs a directory (open, stat, xattrs, getdents, close) against an entry.
	dirUnits = 8
	// racySlack: a directory that changed less than this before it was read may change again
	// within the same timestamp tick, so its cache is not trusted on the next pass.
	racySlack = 2 * time.Second
)

// testHookAfterList, when set by tests, runs after a directory was listed and before its
// entries are stat'ed (to make entries vanish deterministically).
var testHookAfterList func(rawPath string)

// pass is the state of one walk of an upperdir.
type pass struct {
	ctx     context.Context
	cfg     *config
	rootFd  int
	rootDev [2]uint32
	rootMnt uint64 // 0 when the kernel does not report mount ids
	openat2 bool

	tree  *aggTree
	links *linkSet
	errs  errList
	lim   *cpuLimiter
	q     *workQueue

	openDirs atomic.Int32 // directory descriptors kept open for children

	hotMu    sync.Mutex
	hotFiles []DirUsage

	// Scanner state; cache is nil for a one-shot Scan.
	cache        *cacheTable
	full         bool
	gen          uint32
	recentCutoff int64 // files changed at or after it (ns) are re-stat'ed on every pass
	racyCutoff   int64
	carried      atomic.Int64
}

// worker is the per-goroutine scratch space of a pass.
type worker struct {
	buf      []byte
	xattr    []byte
	stx      unix.Statx_t
	sum      totals
	subdirs  []subdirRef
	names    []byte   // scratch for building cached name lists
	subNames []byte   // scratch for the names of a directory's subdirectories
	subInos  []uint64 // scratch for their inode numbers
	subList  string   // the names of the last listed directory's subdirectories
	restats  []restat // scratch for reuseDir
	units    int      // work since the last CPU-budget check: 1 per entry, dirUnits per directory
}

// restat is a tracked file stat'ed again by reuseDir.
type restat struct {
	stx   unix.Statx_t
	nameZ string
	keep  bool
}

// dirHandle is an open directory shared by the children queued from it.
type dirHandle struct {
	fd    int
	refs  atomic.Int32
	close bool // false for the root, which the pass closes
	p     *pass
}

func (h *dirHandle) release() {
	if h == nil || h.refs.Add(-1) != 0 {
		return
	}
	if h.close {
		_ = unix.Close(h.fd)
		h.p.openDirs.Add(-1)
	}
}

func runPass(ctx context.Context, upperDir string, cfg *config, cache *cacheTable, full bool, gen uint32) (Usage, error) {
	if err := ctx.Err(); err != nil {
		return Usage{}, err
	}
	rootFd, err := unix.Open(upperDir, dirOpenFlags, 0)
	if err != nil {
		return Usage{}, fmt.Errorf("open upperdir %s: %w", upperDir, err)
	}
	defer unix.Close(rootFd)
	var rootStx unix.Statx_t
	if err := statxFd(rootFd, &rootStx); err != nil {
		return Usage{}, fmt.Errorf("stat upperdir %s: %w", upperDir, err)
	}
	now := cfg.Now()
	p := &pass{
		ctx:          ctx,
		cfg:          cfg,
		rootFd:       rootFd,
		rootDev:      [2]uint32{rootStx.Dev_major, rootStx.Dev_minor},
		tree:         newAggTree(cfg.MaxTrackedDirs),
		links:        newLinkSet(cfg.MaxHardlinks),
		errs:         errList{max: cfg.MaxErrors},
		lim:          newCPULimiter(cfg.CPULimit),
		q:            newWorkQueue(),
		hotFiles:     make([]DirUsage, len(cfg.HotPaths)),
		cache:        cache,
		full:         full || cache == nil,
		gen:          gen,
		recentCutoff: now.Add(-cfg.Rescan.RecentWindow).UnixNano(),
		racyCutoff:   now.Add(-racySlack).UnixNano(),
	}
	if rootStx.Mask&unix.STATX_MNT_ID != 0 {
		p.rootMnt = rootStx.Mnt_id
	}
	p.openat2 = !cfg.noOpenat2 && openat2Works(rootFd)

	root := &dirItem{node: p.tree.root(), own: true, hot: cfg.hot}
	if cfg.hot != nil {
		p.tree.root().hot = cfg.hot.idx
	}
	p.q.push(root)

	workers := make([]*worker, cfg.Workers)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{buf: make([]byte, direntBufSize), xattr: make([]byte, 256)}
		workers[i] = w
		wg.Go(func() { p.work(w, &rootStx) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Usage{}, err
	}

	var sum totals
	for _, w := range workers {
		sum.add(w.sum)
	}
	u := Usage{
		Bytes:          sum.bytes,
		ApparentBytes:  sum.apparent,
		Inodes:         sum.inodes,
		Dirs:           sum.dirs,
		Files:          sum.files,
		Whiteouts:      sum.whiteouts,
		OpaqueDirs:     sum.opaque,
		Full:           p.full,
		CarriedEntries: p.carried.Load(), // only incremental passes carry entries over
	}
	u.TopDirs, u.HotPaths = p.tree.results(cfg.TopN, cfg.HotPaths, p.hotFiles, p.links.spreadEntries())
	if p.tree.capped {
		p.errs.add(fmt.Sprintf("more than %d directories: deeper ones folded into their ancestors for top directories", cfg.MaxTrackedDirs))
	}
	if n := p.links.overflow; n > 0 {
		p.errs.add(fmt.Sprintf("hardlink table full (%d inodes): %d hardlinked files may be counted more than once", cfg.MaxHardlinks, n))
	}
	u.Errors = p.errs.result()
	return u, nil
}

// openat2Works reports whether openat2 is available (Linux >= 5.6 without a seccomp filter
// refusing it).
func openat2Works(rootFd int) bool {
	fd, err := openDirAt(rootFd, ".", true)
	if err != nil {
		return false
	}
	_ = unix.Close(fd)
	return true
}

func (p *pass) work(w *worker, rootStx *unix.Statx_t) {
	for {
		it := p.q.pop()
		if it == nil {
			return
		}
		if p.ctx.Err() != nil {
			it.via.release()
		} else {
			p.readDir(w, it, rootStx)
		}
		p.q.done()
	}
}

// checkpoint records units of work and reports whether the pass should stop. Every
// checkEvery units it lets the CPU limiter pause the worker.
func (p *pass) checkpoint(w *worker, units int) bool {
	if w.units += units; w.units >= checkEvery {
		w.units = 0
		if p.lim.wait(p.ctx) != nil {
			return true
		}
	}
	return p.ctx.Err() != nil
}

func (p *pass) note(format string, args ...any) {
	p.errs.add(fmt.Sprintf(format, args...))
}

// readDir reads one directory: opens it, counts it and its non-directory entries, and
// queues its subdirectories.
func (p *pass) readDir(w *worker, it *dirItem, rootStx *unix.Statx_t) {
	fd, closeFd := p.rootFd, false
	stx := rootStx
	if it.parent != nil {
		var ok bool
		fd, ok = p.openItem(w, it)
		if !ok {
			return
		}
		closeFd = true
		stx = &w.stx
	}
	handedOff := false
	defer func() {
		if closeFd && !handedOff {
			_ = unix.Close(fd)
		}
	}()

	local := totals{bytes: int64(stx.Blocks) * 512, dirs: 1, inodes: 1}
	ino, ctime := stx.Ino, statxNanos(stx.Ctime)

	var ce *dirCache
	reuse := false
	if p.cache != nil {
		ce, reuse = p.cache.claim(ino, ctime, p.gen, p.full)
		// A directory naming hot-path files is always read, so those files are always seen.
		if it.hot != nil && len(it.hot.children) > 0 {
			reuse = false
		}
	}
	w.subdirs = w.subdirs[:0]
	read := false
	if reuse {
		read = p.reuseDir(w, it, fd, ce, &local)
	}
	if !read {
		complete, stop := p.listDir(w, it, fd, ce, &local)
		if stop {
			return
		}
		if ce != nil && complete {
			ce.ino, ce.ctime = ino, ctime
			ce.racy = ctime >= p.racyCutoff
			ce.subInos = append(ce.subInos[:0], w.subInos...)
			ce.subdirs = w.subList
			ce.valid = true
		}
	}
	it.node.add(local)
	w.sum.add(local)
	if p.checkpoint(w, dirUnits) {
		return
	}
	handedOff = p.queueChildren(w, it, fd, closeFd, w.subdirs)
}

// openItem opens a queued directory and stats it into w.stx, noting why when it cannot.
func (p *pass) openItem(w *worker, it *dirItem) (int, bool) {
	var fd int
	var err error
	if it.via != nil {
		// One component: openat with O_NOFOLLOW; sameMount below rejects a mountpoint.
		fd, err = openDirZ(it.via.fd, it.nameZ)
	} else {
		fd, err = p.openPath(it)
	}
	if err != nil {
		switch {
		case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
			// Like du, count the unreadable directory itself.
			p.countUnreadable(w, it)
			p.note("%s: open directory: %v", QuotePath(it.rawPath()), err)
		case errors.Is(err, unix.EXDEV):
			p.note("%s: mountpoint skipped", QuotePath(it.rawPath()))
		case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP):
			p.note("%s: vanished or replaced during the scan", QuotePath(it.rawPath()))
		default:
			p.note("%s: open directory: %v", QuotePath(it.rawPath()), err)
		}
		it.via.release()
		return -1, false
	}
	it.via.release()
	if err := statxFd(fd, &w.stx); err != nil {
		_ = unix.Close(fd)
		p.note("%s: stat directory: %v", QuotePath(it.rawPath()), err)
		return -1, false
	}
	if w.stx.Mode&unix.S_IFMT != unix.S_IFDIR {
		_ = unix.Close(fd)
		p.note("%s: vanished or replaced during the scan", QuotePath(it.rawPath()))
		return -1, false
	}
	if !p.sameMount(&w.stx) {
		_ = unix.Close(fd)
		p.note("%s: mountpoint skipped", QuotePath(it.rawPath()))
		return -1, false
	}
	return fd, true
}

// sameMount reports whether an entry lives on the upperdir's mount and is not the root of a
// mount stacked below it.
func (p *pass) sameMount(stx *unix.Statx_t) bool {
	if stx.Dev_major != p.rootDev[0] || stx.Dev_minor != p.rootDev[1] {
		return false
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return false
	}
	if p.rootMnt != 0 && stx.Mask&unix.STATX_MNT_ID != 0 && stx.Mnt_id != p.rootMnt {
		return false
	}
	return true
}

// countUnreadable counts a directory that cannot be opened by stat'ing it from its parent.
func (p *pass) countUnreadable(w *worker, it *dirItem) {
	pfd, closeParent := -1, false
	if it.via != nil {
		pfd = it.via.fd
	} else {
		fd, err := p.openPath(it.parent)
		if err != nil {
			return
		}
		pfd, closeParent = fd, true
	}
	if closeParent {
		defer unix.Close(pfd)
	}
	if err := statxAt(pfd, unsafe.StringData(it.nameZ), statxFlags, statxMask, &w.stx); err != nil {
		return
	}
	if w.stx.Mode&unix.S_IFMT != unix.S_IFDIR || !p.sameMount(&w.stx) {
		return
	}
	t := totals{bytes: int64(w.stx.Blocks) * 512, dirs: 1, inodes: 1}
	it.node.add(t)
	w.sum.add(t)
}

// openPath opens a directory by its path from the root, in chunks short enough for one
// lookup each, holding at most two descriptors; the caller closes the result. It is used
// when the parent's descriptor was not kept (see Options.maxOpenDirs).
func (p *pass) openPath(it *dirItem) (int, error) {
	var names []string
	for i := it; i.parent != nil; i = i.parent {
		names = append(names, i.name())
	}
	cur := p.rootFd
	closeCur := func() {
		if cur != p.rootFd {
			_ = unix.Close(cur)
		}
	}
	if len(names) == 0 {
		return unix.Dup(p.rootFd)
	}
	var chunk strings.Builder
	for i := len(names) - 1; i >= 0; {
		chunk.Reset()
		if p.openat2 {
			for ; i >= 0; i-- {
				if chunk.Len() > 0 && chunk.Len()+1+len(names[i]) > maxChunk {
					break
				}
				if chunk.Len() > 0 {
					chunk.WriteByte('/')
				}
				chunk.WriteString(names[i])
			}
		} else {
			chunk.WriteString(names[i])
			i--
		}
		fd, err := openDirAt(cur, chunk.String(), p.openat2)
		closeCur()
		if err != nil {
			return -1, err
		}
		cur = fd
		if !p.openat2 {
			var stx unix.Statx_t
			if err := statxFd(cur, &stx); err != nil {
				closeCur()
				return -1, err
			}
			if !p.sameMount(&stx) {
				closeCur()
				return -1, unix.EXDEV
			}
		}
	}
	return cur, nil
}

// listDir reads every entry of a directory (getdents and a statx per non-directory entry),
// adds them to local and w.subdirs, and rebuilds the directory's cache entry when ce is set.
// complete is false when the directory could not be read to its end (the cache entry stays
// invalid); stop is true when the pass must stop.
func (p *pass) listDir(w *worker, it *dirItem, fd int, ce *dirCache, local *totals) (complete, stop bool) {
	opaque, err := isOpaque(fd, w.xattr)
	if err != nil {
		p.note("%s: list xattrs: %v", QuotePath(it.rawPath()), err)
	}
	if opaque {
		local.opaque++
	}
	if ce != nil {
		ce.valid = false
		ce.opaque = opaque
		ce.cold = coldTotals{}
		ce.tracked = ""
	}
	tracked, subNames := w.names[:0], w.subNames[:0]
	w.subInos = w.subInos[:0]
	defer func() {
		// One string holds all the subdirectory names: the queued children and the cache
		// entry share it.
		list := string(subNames)
		w.subList = list
		ids := w.subInos
		for len(list) > 0 && len(ids) > 0 {
			var nameZ string
			nameZ, list = nextName(list)
			w.subdirs = append(w.subdirs, subdirRef{nameZ: nameZ, ino: ids[0]})
			ids = ids[1:]
		}
		if ce != nil {
			ce.tracked = string(tracked)
		}
		w.names, w.subNames = tracked[:0], subNames[:0]
	}()
	hook := testHookAfterList
	for {
		n, err := getdents(fd, w.buf)
		if err != nil {
			p.note("%s: read directory: %v", QuotePath(it.rawPath()), err)
			return false, false
		}
		if n <= 0 {
			return true, false
		}
		if hook != nil {
			hook(it.rawPath())
		}
		iter := direntIter{buf: w.buf[:n]}
		for {
			dIno, typ, name, nameOff, ok := iter.next()
			if !ok {
				break
			}
			if p.checkpoint(w, 1) {
				return false, true
			}
			if typ == unix.DT_DIR {
				subNames = append(subNames, w.buf[nameOff:nameOff+len(name)+1]...)
				w.subInos = append(w.subInos, dIno)
				continue
			}
			if err := statxAt(fd, &w.buf[nameOff], statxFlags, statxMask, &w.stx); err != nil {
				if errors.Is(err, unix.ENOENT) {
					p.note("%s: vanished during the scan", QuotePath(it.childPath(string(name))))
				} else {
					p.note("%s: stat: %v", QuotePath(it.childPath(string(name))), err)
				}
				continue
			}
			if w.stx.Mode&unix.S_IFMT == unix.S_IFDIR {
				subNames = append(subNames, w.buf[nameOff:nameOff+len(name)+1]...)
				w.subInos = append(w.subInos, w.stx.Ino)
				continue
			}
			if !p.sameMount(&w.stx) {
				p.note("%s: mountpoint skipped", QuotePath(it.childPath(string(name))))
				continue
			}
			t := p.account(&w.stx, it.node)
			local.add(t)
			hot := p.hotFile(it, name, &w.stx)
			if ce != nil {
				if hot || p.mustRestat(&w.stx) {
					tracked = append(tracked, w.buf[nameOff:nameOff+len(name)+1]...)
				} else {
					ce.cold.add(t)
				}
			}
		}
	}
}

// reuseDir counts an unchanged directory from its cache entry, re-stat'ing only its
// tracked files. It returns false, having counted nothing, when anything looks different
// from the cache (then the caller reads the directory).
func (p *pass) reuseDir(w *worker, it *dirItem, fd int, ce *dirCache, local *totals) bool {
	stats := w.restats[:0]
	for list := ce.tracked; list != ""; {
		var nameZ string
		nameZ, list = nextName(list)
		if nameZ == "" {
			break
		}
		if p.checkpoint(w, 1) {
			return false
		}
		if err := statxAt(fd, unsafe.StringData(nameZ), statxFlags, statxMask, &w.stx); err != nil {
			return false
		}
		if w.stx.Mode&unix.S_IFMT == unix.S_IFDIR || !p.sameMount(&w.stx) {
			return false
		}
		stats = append(stats, restat{stx: w.stx, nameZ: nameZ, keep: p.mustRestat(&w.stx)})
	}
	w.restats = stats[:0]
	kept := w.names[:0]
	dropped := false
	for i := range stats {
		s := &stats[i]
		t := p.account(&s.stx, it.node)
		local.add(t)
		if s.keep {
			kept = append(kept, s.nameZ...)
		} else {
			ce.cold.add(t)
			dropped = true
		}
	}
	if dropped {
		ce.tracked = string(kept)
	}
	w.names = kept[:0]
	cold := ce.cold.totals()
	local.add(cold)
	p.carried.Add(cold.inodes)
	if ce.opaque {
		local.opaque++
	}
	ids := ce.subInos
	for list := ce.subdirs; list != "" && len(ids) > 0; ids = ids[1:] {
		var nameZ string
		nameZ, list = nextName(list)
		if nameZ == "" {
			break
		}
		w.subdirs = append(w.subdirs, subdirRef{nameZ: nameZ, ino: ids[0]})
	}
	return true
}

// mustRestat reports whether an incremental pass must stat this file again even when its
// directory did not change: it changed recently, it is large, or it is hardlinked (counting
// it once needs to see it).
func (p *pass) mustRestat(stx *unix.Statx_t) bool {
	large := p.cfg.Rescan.LargeFileBytes
	return stx.Nlink > 1 ||
		statxNanos(stx.Ctime) >= p.recentCutoff ||
		int64(stx.Blocks)*512 >= large || int64(stx.Size) >= large
}

// account returns the figures of one non-directory entry found in the directory collected
// by node: zero (but for the whiteout count) when it is a further link of a hardlinked inode
// already counted, which linkSet then attributes to node's figures too.
func (p *pass) account(stx *unix.Statx_t, node *aggNode) totals {
	t := entryTotals(stx)
	if stx.Nlink > 1 && !p.links.first(stx.Ino, stx.Nlink, node, t) {
		return totals{whiteouts: t.whiteouts}
	}
	return t
}

// entryTotals is the figure of one non-directory entry counted on its own.
func entryTotals(stx *unix.Statx_t) totals {
	t := totals{inodes: 1, bytes: int64(stx.Blocks) * 512}
	switch mode := stx.Mode & unix.S_IFMT; {
	case mode == unix.S_IFCHR && stx.Rdev_major == 0 && stx.Rdev_minor == 0:
		// Every whiteout name is a deletion, even when overlayfs shares one inode among them.
		t.whiteouts = 1
	case mode == unix.S_IFREG || mode == unix.S_IFLNK:
		t.apparent = int64(stx.Size)
		t.files = 1
	default:
		t.files = 1
	}
	return t
}

// hotFile adds a non-directory entry's own figures (even when it is a further link of an
// inode counted elsewhere) to the hot paths naming it, and reports whether any does.
func (p *pass) hotFile(it *dirItem, name []byte, stx *unix.Statx_t) bool {
	if it.hot == nil || len(it.hot.children) == 0 {
		return false
	}
	h := it.hot.children[string(name)]
	if h == nil || len(h.idx) == 0 {
		return false
	}
	t := entryTotals(stx)
	p.hotMu.Lock()
	for _, i := range h.idx {
		p.hotFiles[i].Bytes += t.bytes
		p.hotFiles[i].ApparentBytes += t.apparent
		p.hotFiles[i].Files += t.files
	}
	p.hotMu.Unlock()
	return true
}

// queueChildren queues the subdirectories of it. In an incremental pass it first stats each
// subdirectory that was a leaf (no subdirectory, no file to re-stat) from fd and, when it did
// not change, counts it from the cache without opening it. It keeps fd open for the queued
// children when the descriptor budget allows, and reports whether it did (then the children
// close it).
func (p *pass) queueChildren(w *worker, it *dirItem, fd int, closeFd bool, subs []subdirRef) bool {
	if len(subs) == 0 {
		return false
	}
	items := make([]*dirItem, 0, len(subs))
	for _, sub := range subs {
		name := sub.name()
		child := &dirItem{parent: it, nameZ: sub.nameZ, depth: it.depth + 1, node: it.node}
		var hotIdx []int
		if it.hot != nil {
			child.hot = it.hot.children[name]
			if child.hot != nil {
				hotIdx = child.hot.idx
			}
		}
		if it.own && (child.hot != nil || int(child.depth) <= p.cfg.MaxDepthForTop) {
			if n := p.tree.child(it.node, name, hotIdx, child.hot != nil); n != nil {
				child.node, child.own = n, true
			}
		}
		if p.countCachedLeaf(w, fd, child, sub) {
			continue
		}
		items = append(items, child)
	}
	if len(items) == 0 {
		return false
	}
	var h *dirHandle
	if !closeFd {
		h = &dirHandle{fd: fd, p: p}
	} else if p.openDirs.Add(1) <= int32(p.cfg.maxOpenDirs) {
		h = &dirHandle{fd: fd, close: true, p: p}
	} else {
		p.openDirs.Add(-1)
	}
	if h != nil {
		h.refs.Store(int32(len(items)))
		for _, c := range items {
			c.via = h
		}
	}
	p.q.push(items...)
	return h != nil && h.close
}

// countCachedLeaf counts an unchanged leaf directory from the cache with one statx from its
// parent, and reports whether it did.
func (p *pass) countCachedLeaf(w *worker, parentFd int, child *dirItem, sub subdirRef) bool {
	if p.cache == nil || p.full || (child.hot != nil && len(child.hot.children) > 0) || !p.cache.maybeLeaf(sub.ino) {
		return false
	}
	if err := statxAt(parentFd, unsafe.StringData(sub.nameZ), statxFlags, statxMask, &w.stx); err != nil {
		return false
	}
	if w.stx.Mode&unix.S_IFMT != unix.S_IFDIR || w.stx.Ino != sub.ino || !p.sameMount(&w.stx) {
		return false
	}
	ce := p.cache.claimLeaf(sub.ino, statxNanos(w.stx.Ctime), p.gen)
	if ce == nil {
		return false
	}
	t := totals{bytes: int64(w.stx.Blocks) * 512, dirs: 1, inodes: 1}
	cold := ce.cold.totals()
	t.add(cold)
	if ce.opaque {
		t.opaque++
	}
	p.carried.Add(cold.inodes)
	child.node.add(t)
	w.sum.add(t)
	return true
}
