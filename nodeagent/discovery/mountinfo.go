package discovery

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// maxMountInfoLine caps one line of a mount table (an overlay with hundreds of layers writes
// lines of tens of kilobytes).
const maxMountInfoLine = 4 << 20

// maxLineErrors caps how many malformed lines ParseMountInfo describes in its error.
const maxLineErrors = 8

// Mount is one line of /proc/<pid>/mountinfo (see proc(5)), with the kernel's octal escapes
// (\040 for a space, \011, \012, \134, and in super options \054 for a comma) decoded.
type Mount struct {
	// ID and ParentID are the mount's and its parent's unique IDs.
	ID, ParentID int
	// Major and Minor are the st_dev of files on this mount (for overlayfs an anonymous
	// device of its own, not the upper filesystem's).
	Major, Minor uint32
	// Root is the directory of the filesystem that forms the root of this mount (not "/"
	// for a bind mount of a subdirectory).
	Root string
	// MountPoint is where the mount is, relative to the reading process's root.
	MountPoint string
	// MountOptions are the per-mount options, verbatim ("rw,relatime").
	MountOptions string
	// OptionalFields are the propagation tags ("shared:1", "master:2", ...), verbatim.
	OptionalFields []string
	// FSType is the filesystem type ("overlay", "ext4", "fuse.sshfs").
	FSType string
	// Source is the mount source ("overlay", "/dev/vda1", "none").
	Source string
	// SuperOptions are the per-superblock options in the kernel's order. nil when the line
	// had no super options field.
	SuperOptions []MountOption
}

// MountOption is one per-superblock option: Value is empty for a flag such as "rw".
type MountOption struct {
	Key, Value string
}

// Option looks a super option up by key, independently of order. For a key given more than
// once it returns the last value, as the kernel's parser would have applied it.
func (m Mount) Option(key string) (string, bool) {
	for i := len(m.SuperOptions) - 1; i >= 0; i-- {
		if m.SuperOptions[i].Key == key {
			return m.SuperOptions[i].Value, true
		}
	}
	return "", false
}

// Device is the mount's "major:minor" as printed in mountinfo.
func (m Mount) Device() string { return fmt.Sprintf("%d:%d", m.Major, m.Minor) }

// OverlayDirs are an overlayfs mount's layer directories, as the mount was given them.
//
// The kernel shows each path exactly as passed at mount time, so a path can be relative to the
// working directory of the process that mounted it: containerd's mount helper chdirs to the
// snapshotter's "snapshots" directory and passes lowerdir=12/fs:11/fs when the option string
// would be too long (upperdir stays absolute); Docker's overlay2 driver and
// containers/storage mount from their driver home (<root>/overlay2, <root>/overlay) and pass
// lowerdir=l/ABC:l/DEF,upperdir=<id>/diff,workdir=<id>/work. Relative reports which paths are
// relative, Resolve makes them absolute against the directory the caller knows applies.
type OverlayDirs struct {
	// LowerDirs are the lower layers, topmost first (lowerdir=a:b or repeated lowerdir+=).
	LowerDirs []string
	// DataDirs are data-only lower layers (after "::" in lowerdir, or datadir+=).
	DataDirs []string
	// UpperDir and WorkDir are empty for a read-only overlay.
	UpperDir, WorkDir string
}

// Overlay returns the layer directories of an overlayfs mount; ok is false for any other
// filesystem type.
func (m Mount) Overlay() (dirs OverlayDirs, ok bool) {
	if m.FSType != "overlay" {
		return OverlayDirs{}, false
	}
	for _, o := range m.SuperOptions {
		switch o.Key {
		case "lowerdir":
			lower, data := splitLowerDirs(o.Value)
			dirs.LowerDirs, dirs.DataDirs = lower, data
		case "lowerdir+":
			dirs.LowerDirs = append(dirs.LowerDirs, unescapeOverlayPath(o.Value))
		case "datadir+":
			dirs.DataDirs = append(dirs.DataDirs, unescapeOverlayPath(o.Value))
		case "upperdir":
			dirs.UpperDir = unescapeOverlayPath(o.Value)
		case "workdir":
			dirs.WorkDir = unescapeOverlayPath(o.Value)
		}
	}
	return dirs, true
}

// Relative says whether any layer path is relative.
func (d OverlayDirs) Relative() bool {
	rel := func(p string) bool { return p != "" && !filepath.IsAbs(p) }
	for _, p := range append(append([]string{d.UpperDir, d.WorkDir}, d.LowerDirs...), d.DataDirs...) {
		if rel(p) {
			return true
		}
	}
	return false
}

// Resolve returns d with every relative path joined to base (the directory the mounting
// process was in) and every path cleaned.
func (d OverlayDirs) Resolve(base string) OverlayDirs {
	abs := func(p string) string {
		if p == "" {
			return ""
		}
		if filepath.IsAbs(p) {
			return filepath.Clean(p)
		}
		return filepath.Join(base, p)
	}
	out := OverlayDirs{UpperDir: abs(d.UpperDir), WorkDir: abs(d.WorkDir)}
	for _, p := range d.LowerDirs {
		out.LowerDirs = append(out.LowerDirs, abs(p))
	}
	for _, p := range d.DataDirs {
		out.DataDirs = append(out.DataDirs, abs(p))
	}
	return out
}

// splitLowerDirs splits an overlay lowerdir value on unescaped colons; an empty element ("::")
// starts the data-only layers.
func splitLowerDirs(v string) (lower, data []string) {
	inData := false
	var cur strings.Builder
	flush := func(last bool) {
		s := cur.String()
		cur.Reset()
		switch {
		case s == "" && !last:
			inData = true
		case s == "":
		case inData:
			data = append(data, s)
		default:
			lower = append(lower, s)
		}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && i+1 < len(v):
			i++
			cur.WriteByte(v[i])
		case c == ':':
			flush(false)
		default:
			cur.WriteByte(c)
		}
	}
	flush(true)
	return lower, data
}

// unescapeOverlayPath removes overlayfs's backslash escapes (a path containing ':' or ','
// is given to the kernel as "\:" or "\,").
func unescapeOverlayPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ParseMountInfo parses a /proc/<pid>/mountinfo table. It returns every well-formed line;
// malformed lines are skipped and described in the error (so a non-nil error can come with
// usable mounts).
func ParseMountInfo(r io.Reader) ([]Mount, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxMountInfoLine)
	sc.Split(splitLines)
	var (
		mounts []Mount
		errs   []error
		bad    int
		lineNo int
	)
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if line == "" {
			continue
		}
		m, err := parseMountInfoLine(line)
		if err != nil {
			bad++
			if bad <= maxLineErrors {
				errs = append(errs, fmt.Errorf("mountinfo line %d: %w", lineNo, err))
			}
			continue
		}
		mounts = append(mounts, m)
	}
	if bad > maxLineErrors {
		errs = append(errs, fmt.Errorf("mountinfo: %d more malformed lines", bad-maxLineErrors))
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("mountinfo after line %d: %w", lineNo, err))
	}
	return mounts, errors.Join(errs...)
}

// splitLines splits on '\n' only: unlike bufio.ScanLines it keeps a '\r', which the kernel
// never writes but a mount point could contain (escaped fields cannot contain '\n').
func splitLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func parseMountInfoLine(line string) (Mount, error) {
	f := strings.Split(line, " ")
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 {
		return Mount{}, errors.New("no \"-\" separator after the optional fields")
	}
	tail := f[sep+1:]
	if len(tail) < 2 || len(tail) > 3 {
		return Mount{}, fmt.Errorf("want filesystem type, source and super options after \"-\", got %d fields", len(tail))
	}
	var m Mount
	var err error
	if m.ID, err = parseNonNegative(f[0]); err != nil {
		return Mount{}, fmt.Errorf("mount ID: %w", err)
	}
	if m.ParentID, err = parseNonNegative(f[1]); err != nil {
		return Mount{}, fmt.Errorf("parent ID: %w", err)
	}
	maj, min, ok := strings.Cut(f[2], ":")
	if !ok {
		return Mount{}, fmt.Errorf("device %q is not major:minor", f[2])
	}
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return Mount{}, fmt.Errorf("device %q is not major:minor", f[2])
	}
	m.Major, m.Minor = uint32(ma), uint32(mi)
	m.Root = unescapeOctal(f[3])
	m.MountPoint = unescapeOctal(f[4])
	m.MountOptions = f[5]
	if sep > 6 {
		m.OptionalFields = append([]string(nil), f[6:sep]...)
	}
	m.FSType = unescapeOctal(tail[0])
	m.Source = unescapeOctal(tail[1])
	if len(tail) == 3 {
		m.SuperOptions = parseSuperOptions(tail[2])
	}
	return m, nil
}

func parseNonNegative(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, fmt.Errorf("%q is not a non-negative integer", s)
	}
	return int(n), nil
}

// parseSuperOptions splits super options on commas (the kernel escapes a comma inside a value
// as \054) and each option at its first "=", then decodes the escapes.
func parseSuperOptions(s string) []MountOption {
	parts := strings.Split(s, ",")
	out := make([]MountOption, 0, len(parts))
	for _, p := range parts {
		k, v, _ := strings.Cut(p, "=")
		out = append(out, MountOption{Key: unescapeOctal(k), Value: unescapeOctal(v)})
	}
	return out
}

// unescapeOctal decodes the kernel's \ooo escapes; a backslash not followed by three octal
// digits (at most \377) is kept as is.
func unescapeOctal(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) && s[i+1] <= '3' {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// escapeOctal is the kernel's seq_escape: every byte of chars becomes \ooo.
func escapeOctal(s, chars string) string {
	if !strings.ContainsAny(s, chars) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(chars, s[i]) >= 0 {
			fmt.Fprintf(&b, "\\%03o", s[i])
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// String formats the mount as a mountinfo line, escaping as the kernel does (so that
// ParseMountInfo reads it back unchanged).
func (m Mount) String() string {
	const pathChars = " \t\n\\"
	var b strings.Builder
	fmt.Fprintf(&b, "%d %d %d:%d %s %s %s", m.ID, m.ParentID, m.Major, m.Minor,
		escapeOctal(m.Root, pathChars), escapeOctal(m.MountPoint, pathChars), m.MountOptions)
	for _, o := range m.OptionalFields {
		b.WriteString(" " + o)
	}
	b.WriteString(" - " + escapeOctal(m.FSType, pathChars) + " " + escapeOctal(m.Source, pathChars))
	if m.SuperOptions != nil {
		b.WriteByte(' ')
		for i, o := range m.SuperOptions {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(escapeOctal(o.Key, ",= \t\n\\"))
			if o.Value != "" {
				b.WriteString("=" + escapeOctal(o.Value, ", \t\n\\"))
			}
		}
	}
	return b.String()
}
