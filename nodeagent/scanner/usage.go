package scanner

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Usage is the measurement of one upperdir.
//
// Bytes, Inodes and the per-directory figures count what `du` counts: with no mount below the
// upperdir, Bytes equals `du -sB1 <upperdir>` and Inodes equals `du -s --inodes <upperdir>`.
// Mountpoints below the upperdir (bind mounts too) are skipped with everything under them and
// noted in Errors; the directory a mount covers cannot be seen and is not counted.
type Usage struct {
	// Bytes is the allocated size: st_blocks*512 summed over distinct inodes, the root
	// directory included, hardlinked files once. A sparse file counts what it allocates.
	Bytes int64 `json:"bytes"`
	// ApparentBytes is st_size summed over regular files and symlinks, hardlinked files once.
	// Directories, whiteouts and special files are not counted, so
	// `du -sb --apparent-size` = ApparentBytes + the st_size of every directory.
	ApparentBytes int64 `json:"apparentBytes"`
	// Inodes counts distinct inodes: directories, files and whiteouts, hardlinked inodes
	// once. Overlayfs may share one inode among many whiteouts, so Inodes can be less than
	// Dirs + Files + Whiteouts.
	Inodes int64 `json:"inodes"`
	// Dirs counts directories, the root included.
	Dirs int64 `json:"dirs"`
	// Files counts distinct non-directory inodes other than whiteouts: regular files,
	// symlinks, FIFOs, sockets and devices.
	Files int64 `json:"files"`
	// Whiteouts counts overlayfs whiteout entries (character devices 0/0, one per deleted
	// lower name), never data.
	Whiteouts int64 `json:"whiteouts"`
	// OpaqueDirs counts directories marked opaque (xattr trusted.overlay.opaque or
	// user.overlay.opaque = "y").
	OpaqueDirs int64 `json:"opaqueDirs"`
	// TopDirs are at most Options.TopN directories that carry the bytes, most bytes first,
	// each with its whole subtree's figures. The deepest directories holding the bytes win:
	// with a threshold T, a directory is selected when the bytes below it that no selected
	// descendant already claims reach T, and T is the smallest value that selects at most
	// TopN directories. So /opt/airflow/logs/scheduler/2026-11-25 holding 5 GB is listed
	// rather than /opt, a parent is listed beside a selected child only if it holds T more
	// bytes elsewhere, and a directory of many small subdirectories is listed for their sum.
	// Only directories down to Options.MaxDepthForTop are candidates. An inode with links in
	// several directories counts, for this choice, in the deepest of them.
	TopDirs []DirUsage `json:"topDirs,omitempty"`
	// HotPaths has exact figures for Options.HotPaths, in the same order.
	HotPaths []DirUsage `json:"hotPaths,omitempty"`
	// Errors lists non-fatal problems (unreadable directories, vanished entries, skipped
	// mountpoints), at most Options.MaxErrors of them and a last line counting the rest.
	Errors []string `json:"errors,omitempty"`
	// Full is true when every entry was examined in this pass (always for Scan). A Scanner's
	// incremental pass sets it to false and carries CarriedEntries over from earlier passes.
	Full bool `json:"full"`
	// CarriedEntries counts the files and whiteouts whose figures an incremental pass took
	// from an earlier pass without a stat (see RescanPolicy); 0 for a full pass.
	CarriedEntries int64 `json:"carriedEntries,omitempty"`
}

// DirUsage is the figure of one directory (or hot-path file) and everything below it, as
// `du -sB1 <dir>` would count it on its own: a hardlinked inode counts once in every
// directory holding one of its links, and once in their common ancestors.
type DirUsage struct {
	// Path is the container path ("/opt/airflow/logs/scheduler"), quoted by the rules of
	// QuotePath when it is not printable UTF-8.
	Path string `json:"path"`
	// Bytes is the allocated size of the subtree, the directory itself included.
	Bytes int64 `json:"bytes"`
	// ApparentBytes is the st_size of the subtree's regular files and symlinks.
	ApparentBytes int64 `json:"apparentBytes"`
	// Files counts the subtree's non-directory inodes other than whiteouts.
	Files int64 `json:"files"`
}

// QuotePath returns a raw container path the way Usage reports it: unchanged when it is
// valid UTF-8 made only of printable characters (strconv.IsPrint) and does not start with a
// double quote, otherwise quoted with strconv.Quote, so the result is a single printable line
// that starts with a double quote, which an unquoted path never does.
func QuotePath(raw string) string {
	if !needsQuote(raw) {
		return raw
	}
	return strconv.Quote(raw)
}

func needsQuote(s string) bool {
	if strings.HasPrefix(s, `"`) || !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return true
		}
	}
	return false
}

// UnquotePath is the inverse of QuotePath: it returns the raw bytes of a reported path.
func UnquotePath(s string) (string, error) {
	if !strings.HasPrefix(s, `"`) {
		return s, nil
	}
	raw, err := strconv.Unquote(s)
	if err != nil {
		return "", fmt.Errorf("unquote path %s: %w", s, err)
	}
	return raw, nil
}

// totals is the figure of a set of entries.
type totals struct {
	bytes, apparent, inodes, files, dirs, whiteouts, opaque int64
}

func (t *totals) add(o totals) {
	t.bytes += o.bytes
	t.apparent += o.apparent
	t.inodes += o.inodes
	t.files += o.files
	t.dirs += o.dirs
	t.whiteouts += o.whiteouts
	t.opaque += o.opaque
}
