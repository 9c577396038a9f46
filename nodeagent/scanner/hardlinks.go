package scanner

import "sync"

// linkSet remembers hardlinked inodes (nlink > 1) so that each is counted once in the totals
// and once in the figures of every directory holding one of its links, as `du <dir>` would.
// An inode is forgotten when all its links were seen, unless its links sit in several
// tracked directories; memory follows those inodes, bounded by max.
type linkSet struct {
	mu       sync.Mutex
	max      int
	pending  map[uint64]*linkEntry // inodes with links not seen yet
	spread   []*linkEntry          // inodes whose links were all seen, in several directories
	overflow int64
}

// linkEntry is one hardlinked inode.
type linkEntry struct {
	left         uint32 // links not seen yet
	bytes, appar int64
	files        int64
	first        *aggNode   // where the inode was counted
	others       []*aggNode // other tracked directories holding a link
}

func newLinkSet(max int) *linkSet {
	return &linkSet{max: max, pending: map[uint64]*linkEntry{}}
}

// first reports whether this is the first link of ino seen in the pass (then the caller
// counts t in node), and records node as holding a link otherwise.
func (s *linkSet) first(ino uint64, nlink uint32, node *aggNode, t totals) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.pending[ino]; ok {
		if node != e.first && !containsNode(e.others, node) {
			e.others = append(e.others, node)
		}
		if e.left <= 1 {
			delete(s.pending, ino)
			if len(e.others) > 0 {
				s.spread = append(s.spread, e)
			}
		} else {
			e.left--
		}
		return false
	}
	if len(s.pending)+len(s.spread) >= s.max {
		s.overflow++
		return true
	}
	s.pending[ino] = &linkEntry{left: nlink - 1, bytes: t.bytes, appar: t.apparent, files: t.files, first: node}
	return true
}

// spreadEntries returns the inodes with links in several tracked directories. Only call it
// after every worker stopped.
func (s *linkSet) spreadEntries() []*linkEntry {
	out := s.spread
	for _, e := range s.pending {
		if len(e.others) > 0 {
			out = append(out, e)
		}
	}
	return out
}

func containsNode(nodes []*aggNode, n *aggNode) bool {
	for _, m := range nodes {
		if m == n {
			return true
		}
	}
	return false
}
