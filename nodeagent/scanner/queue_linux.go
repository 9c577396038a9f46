//go:build linux

package scanner

import "sync"

// dirItem is one directory waiting to be read.
type dirItem struct {
	parent *dirItem // nil for the root; the chain gives the path without storing it
	nameZ  string   // raw name in the parent, NUL-terminated (for syscalls without a copy)
	depth  int32
	// via is the parent's open directory, shared by its children, or nil: then the
	// directory is opened by its path from the root.
	via *dirHandle
	// node collects this directory's totals: its own node when own, else the nearest
	// tracked ancestor's.
	node *aggNode
	own  bool
	hot  *hotNode // position in the hot-path trie, nil when not on a hot path
}

// name returns the raw name of the item in its parent.
func (it *dirItem) name() string {
	if it.nameZ == "" {
		return ""
	}
	return it.nameZ[:len(it.nameZ)-1]
}

// rawPath returns the raw container path of the item.
func (it *dirItem) rawPath() string {
	if it.parent == nil {
		return "/"
	}
	n := 0
	for i := it; i.parent != nil; i = i.parent {
		n += len(i.name()) + 1
	}
	b := make([]byte, n)
	for i := it; i.parent != nil; i = i.parent {
		n -= len(i.name())
		copy(b[n:], i.name())
		n--
		b[n] = '/'
	}
	return string(b)
}

// childPath returns the raw container path of a name in the item.
func (it *dirItem) childPath(name string) string {
	p := it.rawPath()
	if p != "/" {
		p += "/"
	}
	return p + name
}

// workQueue is a LIFO of directories shared by the workers of a pass. LIFO walks depth
// first, which keeps few parent descriptors and few queued items alive.
type workQueue struct {
	mu      sync.Mutex
	cond    sync.Cond
	items   []*dirItem
	pending int // pushed and not done
}

func newWorkQueue() *workQueue {
	q := &workQueue{}
	q.cond.L = &q.mu
	return q
}

func (q *workQueue) push(items ...*dirItem) {
	if len(items) == 0 {
		return
	}
	q.mu.Lock()
	q.items = append(q.items, items...)
	q.pending += len(items)
	q.mu.Unlock()
	if len(items) == 1 {
		q.cond.Signal()
	} else {
		q.cond.Broadcast()
	}
}

// pop returns the next item, or nil when every pushed item is done.
func (q *workQueue) pop() *dirItem {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && q.pending > 0 {
		q.cond.Wait()
	}
	if len(q.items) == 0 {
		return nil
	}
	it := q.items[len(q.items)-1]
	q.items[len(q.items)-1] = nil
	q.items = q.items[:len(q.items)-1]
	return it
}

func (q *workQueue) done() {
	q.mu.Lock()
	q.pending--
	last := q.pending == 0
	q.mu.Unlock()
	if last {
		q.cond.Broadcast()
	}
}
