package scanner

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// aggNode holds the totals of one tracked directory: its own entries plus those of its
// untracked descendants (deeper than MaxDepthForTop, or beyond MaxTrackedDirs).
type aggNode struct {
	parent *aggNode
	idx    int32 // position in aggTree.nodes; a parent always comes before its children
	depth  int32
	name   string // raw name, "" for the root
	hot    []int  // indexes of the hot paths naming this directory

	bytes, apparent, files atomic.Int64
}

func (n *aggNode) add(t totals) {
	if t.bytes != 0 {
		n.bytes.Add(t.bytes)
	}
	if t.apparent != 0 {
		n.apparent.Add(t.apparent)
	}
	if t.files != 0 {
		n.files.Add(t.files)
	}
}

// aggTree is the bounded tree of tracked directories shared by a pass's workers.
type aggTree struct {
	mu     sync.Mutex
	nodes  []*aggNode
	max    int
	capped bool
}

func newAggTree(max int) *aggTree {
	t := &aggTree{max: max}
	t.nodes = []*aggNode{{idx: 0}}
	return t
}

func (t *aggTree) root() *aggNode { return t.nodes[0] }

// child returns a new tracked node for a directory, or nil when the tree is full and the
// directory is not forced (hot paths and their ancestors are always tracked).
func (t *aggTree) child(parent *aggNode, name string, hot []int, forced bool) *aggNode {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !forced && len(t.nodes) >= t.max {
		t.capped = true
		return nil
	}
	n := &aggNode{parent: parent, idx: int32(len(t.nodes)), depth: parent.depth + 1, name: name, hot: hot}
	t.nodes = append(t.nodes, n)
	return n
}

// path returns the raw container path of a node.
func (n *aggNode) path() string {
	if n.parent == nil {
		return "/"
	}
	var names []string
	for m := n; m.parent != nil; m = m.parent {
		names = append(names, m.name)
	}
	slices.Reverse(names)
	return "/" + strings.Join(names, "/")
}

// results turns the tree into subtree figures, TopDirs and HotPaths. Only call it after
// every worker stopped.
func (t *aggTree) results(topN int, hotPaths []string, hotFiles []DirUsage, spread []*linkEntry) (top, hot []DirUsage) {
	n := len(t.nodes)
	parents := make([]int32, n)
	own := make([]int64, n)
	sub := make([]DirUsage, n)
	for i, nd := range t.nodes {
		parents[i] = -1
		if nd.parent != nil {
			parents[i] = nd.parent.idx
		}
		own[i] = nd.bytes.Load()
		sub[i] = DirUsage{Bytes: own[i], ApparentBytes: nd.apparent.Load(), Files: nd.files.Load()}
	}
	for i := n - 1; i > 0; i-- {
		p := parents[i]
		sub[p].Bytes += sub[i].Bytes
		sub[p].ApparentBytes += sub[i].ApparentBytes
		sub[p].Files += sub[i].Files
	}
	spreadLinks(parents, sub, spread)
	ownLinksDeepest(own, spread)
	for _, i := range selectTop(parents, own, topN) {
		d := sub[i]
		d.Path = QuotePath(t.nodes[i].path())
		top = append(top, d)
	}
	slices.SortStableFunc(top, func(a, b DirUsage) int {
		if c := cmp.Compare(b.Bytes, a.Bytes); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	if len(hotPaths) == 0 {
		return top, nil
	}
	hot = make([]DirUsage, len(hotPaths))
	for i, p := range hotPaths {
		hot[i] = hotFiles[i]
		hot[i].Path = p
	}
	for i, nd := range t.nodes {
		for _, h := range nd.hot {
			d := sub[i]
			d.Path = hotPaths[h]
			hot[h] = d
		}
	}
	return top, hot
}

// spreadLinks adds each hardlinked inode to the figures of every directory holding one of
// its links and not already counting it: the directories on the way up from each further
// link to the first directory whose subtree already holds one.
func spreadLinks(parents []int32, sub []DirUsage, spread []*linkEntry) {
	if len(spread) == 0 {
		return
	}
	mark := make([]int, len(parents)) // entry number + 1 that covers the node
	for k, e := range spread {
		for i := e.first.idx; i >= 0; i = parents[i] {
			mark[i] = k + 1
		}
		for _, o := range e.others {
			for i := o.idx; i >= 0 && mark[i] != k+1; i = parents[i] {
				mark[i] = k + 1
				sub[i].Bytes += e.bytes
				sub[i].ApparentBytes += e.appar
				sub[i].Files += e.files
			}
		}
	}
}

// ownLinksDeepest moves, for choosing TopDirs, the bytes of each inode with links in several
// directories from the directory where the walk happened to meet it first to the deepest of
// them (the first by path among equals), so the choice does not depend on the walk order.
func ownLinksDeepest(own []int64, spread []*linkEntry) {
	for _, e := range spread {
		best := e.first
		for _, o := range e.others {
			if o.depth > best.depth || (o.depth == best.depth && o.path() < best.path()) {
				best = o
			}
		}
		if best != e.first {
			own[e.first.idx] -= e.bytes
			own[best.idx] += e.bytes
		}
	}
}

// selectTop picks at most n directories to report as the top directories of a tree given
// as parents (parents[0] = -1 is the root, parents[i] < i) and the bytes each node holds
// itself (its own entries plus folded untracked descendants).
//
// The rule prefers the deepest directories that carry the bytes ("hierarchical heavy
// hitters"). For a threshold T, walk the tree bottom-up; a directory's unclaimed bytes are its
// own bytes plus the unclaimed bytes of its children that were not selected; a directory
// other than the root is selected when its unclaimed bytes reach T, which claims them. So
// /opt/airflow/logs/scheduler/2026-11-25 holding 5 GB is selected and /opt above it is not,
// unless /opt also holds T bytes outside every selected directory; a parent of many
// directories that are small one by one (a log dir with hundreds of dated subdirs) is
// selected for their sum. T is the smallest threshold for which at most n directories are
// selected (found by binary search), which yields the n most useful directories. The
// result is in index order; the caller sorts it.
func selectTop(parents []int32, own []int64, n int) []int {
	if n <= 0 || len(own) < 2 {
		return nil
	}
	var total int64
	for _, b := range own {
		total += max(b, 0)
	}
	unclaimed := make([]int64, len(own))
	count := func(t int64, sel []int) ([]int, int) {
		copy(unclaimed, own)
		c := 0
		for i := len(own) - 1; i > 0; i-- {
			if unclaimed[i] >= t {
				c++
				if sel != nil {
					sel = append(sel, i)
				}
				continue
			}
			unclaimed[parents[i]] += unclaimed[i]
		}
		return sel, c
	}
	// Smallest T in [1, total+1] with count(T) <= n; count(total+1) is 0.
	lo, hi := int64(1), total+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if _, c := count(mid, nil); c <= n {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	sel, _ := count(lo, make([]int, 0, n))
	slices.Sort(sel)
	return sel
}
