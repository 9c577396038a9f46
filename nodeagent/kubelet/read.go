package kubelet

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// Bounds of what Read reads.
const (
	// maxConfigBytes caps one configuration file.
	maxConfigBytes = 1 << 20
	// maxDropins caps the drop-in files of --config-dir.
	maxDropins = 256
	// maxDropinDepth caps how deep subdirectories of --config-dir are walked.
	maxDropinDepth = 8
	// maxMessage is the CRD's bound on status.kubeletEviction.message.
	maxMessage = 1024
)

// Options say where the host's processes are.
type Options struct {
	// HostProc is the host's /proc (the host PID namespace's, so the agent needs hostPID).
	HostProc string
	// HostRoot is where the host's / is visible ("" or "/": this process's own). The kubelet's
	// files are read through it when its /proc/<pid>/root cannot be opened (a security
	// module refusing ptrace access to the kubelet).
	HostRoot string
	// NodeName is this node's name; it tells this node's kubelet from others (its
	// --hostname-override) when the agent sees several.
	NodeName string
}

// Result is what Read learned about the kubelet.
type Result struct {
	// Eviction is the report's status.kubeletEviction.
	Eviction v1alpha1.KubeletEviction
	// NodefsDevice is the "major:minor" of the filesystem of the kubelet's root directory,
	// which the kubelet calls nodefs; empty when unknown.
	NodefsDevice string
}

// Defaults is the result for a kubelet whose configuration could not be read: the kubelet's
// defaults, with why in the message.
func Defaults(why string) v1alpha1.KubeletEviction {
	return v1alpha1.KubeletEviction{
		Source:            v1alpha1.KubeletEvictionDefaults,
		NodefsAvailable:   DefaultEvictionHard["nodefs.available"],
		NodefsInodesFree:  DefaultEvictionHard["nodefs.inodesFree"],
		ImagefsAvailable:  DefaultEvictionHard["imagefs.available"],
		ImagefsInodesFree: DefaultEvictionHard["imagefs.inodesFree"],
		Message:           truncate(why+"; the kubelet's defaults are assumed", maxMessage),
	}
}

// Read finds the node's kubelet process under o.HostProc and reads its hard eviction
// thresholds from its command line and the configuration files it names, through the
// process's root directory (HostProc/<pid>/root: the files as the kubelet sees them, also
// when it runs in a container of its own), or through o.HostRoot when that cannot be opened.
// Symbolic links are resolved inside that root.
// Read never fails: a kubelet it cannot find or a configuration it cannot read is reported
// with the kubelet's defaults (source Defaults) and a message saying why.
func Read(o Options) Result {
	procs, hostNS, err := listKubelets(o.HostProc)
	if err != nil {
		return Result{Eviction: Defaults(err.Error())}
	}
	p, err := pick(procs, hostNS, o.NodeName)
	if err != nil {
		return Result{Eviction: Defaults(fmt.Sprintf("%v in %s (a kubelet built into another binary, as in k3s, is not found)", err, o.HostProc))}
	}
	who := "kubelet PID " + strconv.Itoa(p.PID)
	flags, err := ParseFlags(p.Args[1:])
	if err != nil {
		return Result{Eviction: Defaults(fmt.Sprintf("%s: command line: %v", who, err))}
	}
	root, err := openRoot(filepath.Join(o.HostProc, strconv.Itoa(p.PID), "root"))
	if err != nil {
		hostRoot := o.HostRoot
		if hostRoot == "" {
			hostRoot = "/"
		}
		var herr error
		if root, herr = openRoot(hostRoot); herr != nil {
			return Result{Eviction: Defaults(fmt.Sprintf("%s: %v", who, err))}
		}
		who += fmt.Sprintf(" (files read through the host root %s: %v)", hostRoot, err)
	}
	defer root.close()
	res := Result{}
	if dev, err := root.device(flags.RootDir); err == nil {
		res.NodefsDevice = dev
	}
	var config *Config
	var read []string
	if flags.Config != "" {
		c, err := root.decode(flags.Config)
		if err != nil {
			res.Eviction = Defaults(fmt.Sprintf("%s: --config %s: %v", who, flags.Config, err))
			return res
		}
		config = &c
		read = append(read, "--config "+flags.Config)
	}
	var dropins []Config
	if flags.ConfigDir != "" {
		files, err := root.dropins(flags.ConfigDir)
		if err != nil {
			res.Eviction = Defaults(fmt.Sprintf("%s: --config-dir %s: %v", who, flags.ConfigDir, err))
			return res
		}
		for _, f := range files {
			c, err := root.decode(f)
			if err != nil {
				res.Eviction = Defaults(fmt.Sprintf("%s: drop-in %s: %v", who, f, err))
				return res
			}
			dropins = append(dropins, c)
		}
		read = append(read, fmt.Sprintf("%d drop-ins of --config-dir %s", len(files), flags.ConfigDir))
	}
	eff := Combine(flags, config, dropins)
	ke, err := Thresholds(eff)
	if err != nil {
		res.Eviction = Defaults(fmt.Sprintf("%s: %v, which the kubelet would not have started with (the files changed since it started?)", who, err))
		return res
	}
	msg := who
	if len(read) > 0 {
		msg += ": read " + strings.Join(read, " and ")
	}
	ke.Message = truncate(msg+"; "+eff.Note, maxMessage)
	res.Eviction = ke
	return res
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// root reads files below a process's root directory, resolving every path (and every
// symbolic link, absolute ones included) inside it.
type root struct{ fd int }

// resolve keeps every path below the root and refuses /proc magic links.
const resolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

func openRoot(dir string) (*root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening its root directory %s: %w", dir, err)
	}
	return &root{fd: fd}, nil
}

func (r *root) close() { unix.Close(r.fd) }

// open opens the absolute path p inside the root.
func (r *root) open(p string, flags uint64) (*os.File, error) {
	if !path.IsAbs(p) {
		return nil, fmt.Errorf("path %q is relative: only absolute paths are read", p)
	}
	rel := strings.TrimLeft(path.Clean(p), "/")
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(r.fd, rel, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolve})
	if errors.Is(err, unix.ENOSYS) {
		return nil, errors.New("openat2 is not available (Linux 5.6 or later is needed)")
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// isSymlink says whether the last component of p is a symbolic link.
func (r *root) isSymlink(p string) (bool, error) {
	f, err := r.open(p, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false, err
	}
	return st.Mode&unix.S_IFMT == unix.S_IFLNK, nil
}

// device returns the "major:minor" of the filesystem holding the directory p.
func (r *root) device(p string) (string, error) {
	f, err := r.open(p, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)), nil
}

// decode reads and decodes the configuration file at p: a regular file (through symbolic
// links) of at most maxConfigBytes.
func (r *root) decode(p string) (Config, error) {
	f, err := r.open(p, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return Config{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return Config{}, fmt.Errorf("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return Config{}, err
	}
	if len(b) > maxConfigBytes {
		return Config{}, fmt.Errorf("larger than %d bytes", maxConfigBytes)
	}
	return DecodeConfig(b)
}

// dropins lists the drop-in files of the directory dir in the kubelet's order
// (filepath.WalkDir): entries by name, subdirectories walked where they sort, only names
// ending in ".conf". Like WalkDir, it does not follow a symbolic link to a directory (dir
// itself included: the kubelet reads nothing from such a --config-dir).
func (r *root) dropins(dir string) ([]string, error) {
	var out []string
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		if depth > maxDropinDepth {
			return fmt.Errorf("%s: deeper than %d directories", dir, maxDropinDepth)
		}
		f, err := r.open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			return err
		}
		ents, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return err
		}
		slices.SortFunc(ents, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		for _, e := range ents {
			p := path.Join(dir, e.Name())
			switch {
			case e.IsDir():
				if err := walk(p, depth+1); err != nil {
					return err
				}
			case path.Ext(e.Name()) == ".conf":
				if len(out) == maxDropins {
					return fmt.Errorf("more than %d drop-in files", maxDropins)
				}
				out = append(out, p)
			}
		}
		return nil
	}
	if link, err := r.isSymlink(dir); err != nil {
		return nil, err
	} else if link {
		return nil, nil // the kubelet's WalkDir reads nothing from a link
	}
	if err := walk(path.Clean(dir), 0); err != nil {
		return nil, err
	}
	return out, nil
}
