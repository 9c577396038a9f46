// Package benchgen builds realistic container writable layers for the scanner's tests and
// benchmarks: deep site-packages-like trees, dated log directories, caches of many small
// files, node_modules nesting, large, sparse and hardlinked files, symlinks and whiteouts.
package benchgen

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Spec describes a tree to generate.
type Spec struct {
	// Entries is the approximate number of entries (files and directories) to create.
	Entries int
	// Seed makes the tree deterministic.
	Seed uint64
	// EmptyFiles writes no data (for trees of a million files measuring memory, not I/O).
	EmptyFiles bool
	// Whiteouts adds overlayfs whiteouts (character devices 0/0); needs root.
	Whiteouts bool
	// Big adds large dense files (4 x 16 MiB) and a 1 TiB sparse file.
	Big bool
	// Workers is the number of concurrent writers (default 8: creating files and directories
	// mostly waits on the disk).
	Workers int
}

// Stats says what Generate created.
type Stats struct {
	Files, Dirs, Symlinks, Hardlinks, Whiteouts int
	// DataBytes is the number of bytes written.
	DataBytes int64
}

// ActiveDir is the container directory whose logs are being written (Mutate appends there).
const ActiveDir = "opt/airflow/logs/scheduler/2026-11-25"

// ManifestName is the file, beside the tree, that lists its regular files for Mutate.
const ManifestName = "manifest.txt"

// fileJob is one file to write.
type fileJob struct {
	path string
	size int
}

// Generate creates the tree under root (created if missing) and a manifest beside it
// (root + "." + ManifestName).
func Generate(root string, spec Spec) (Stats, error) {
	if spec.Entries <= 0 {
		return Stats{}, errors.New("benchgen: Entries must be positive")
	}
	if spec.Workers <= 0 {
		spec.Workers = 8
	}
	rng := rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15))
	var st Stats
	var jobs []fileJob
	dirs := map[string]bool{}
	addDir := func(d string) {
		for d != "." && d != "" && !dirs[d] {
			dirs[d] = true
			d = filepath.Dir(d)
		}
	}
	addFile := func(p string, size int) {
		addDir(filepath.Dir(p))
		if spec.EmptyFiles {
			size = 0
		}
		jobs = append(jobs, fileJob{p, size})
	}
	budget := func(frac float64) int { return int(float64(spec.Entries) * frac) }

	// 50%: site-packages: pkg/sub/sub2/{mod.py,__pycache__/mod.cpython-311.pyc}.
	sp := "usr/local/lib/python3.11/site-packages"
	for n, pkg := 0, 0; n < budget(0.50); pkg++ {
		base := fmt.Sprintf("%s/pkg%04d", sp, pkg)
		addFile(base+"/__init__.py", 64+rng.IntN(2048))
		addFile(fmt.Sprintf("%s/pkg%04d-1.%d.dist-info/RECORD", sp, pkg, pkg%7), 512+rng.IntN(8192))
		n += 3
		for s := range 1 + rng.IntN(6) {
			for s2 := range 1 + rng.IntN(4) {
				d := fmt.Sprintf("%s/sub%d/impl%d", base, s, s2)
				for m := range 2 + rng.IntN(10) {
					sz := 200 + rng.IntN(24<<10)
					addFile(fmt.Sprintf("%s/mod%d.py", d, m), sz)
					addFile(fmt.Sprintf("%s/__pycache__/mod%d.cpython-311.pyc", d, m), sz/2+100)
					n += 2
				}
				n += 3
			}
		}
	}
	// 20%: dated log directories, the active day the largest.
	for n, i := 0, 0; n < budget(0.20); i++ {
		day := 25 - i%30
		dir := fmt.Sprintf("opt/airflow/logs/scheduler/2026-11-%02d", day)
		if day <= 0 {
			dir = fmt.Sprintf("opt/airflow/logs/scheduler/2026-10-%02d", 31+day)
		}
		size := 1<<10 + rng.IntN(12<<10)
		if day == 25 {
			size *= 4
		}
		addFile(fmt.Sprintf("%s/dag%03d/task%05d.log", dir, i%97, i), size)
		n++
	}
	// 18%: a cache of many small files in a two-level hash fan-out.
	for i := range budget(0.18) {
		h := rng.Uint32()
		addFile(fmt.Sprintf("var/cache/app/%02x/%02x/%08x%d", h>>24, (h>>16)&0xff, h, i), rng.IntN(4<<10))
	}
	// 10%: nested node_modules.
	for n, i := 0, 0; n < budget(0.10); i++ {
		d := "app/node_modules"
		for lvl := range 1 + i%5 {
			d += fmt.Sprintf("/mod%d-%d/node_modules", i%50, lvl)
		}
		for f := range 8 {
			addFile(fmt.Sprintf("%s/lib%d/file%d.js", d, i, f), 100+rng.IntN(6<<10))
		}
		n += 10
	}
	// A few entries directly in the root and in /tmp, with awkward names.
	addFile("tmp/report\nwith-newline.txt", 100)
	addFile("tmp/\xff\xfeinvalid-utf8", 100)
	addFile("etc/hosts", 0)

	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList) // parents before children
	if err := os.MkdirAll(root, 0o755); err != nil {
		return st, fmt.Errorf("benchgen: %w", err)
	}
	if err := makeDirs(root, dirList, spec.Workers); err != nil {
		return st, err
	}
	st.Dirs = len(dirList)
	written, err := writeFiles(root, jobs, spec.Workers)
	if err != nil {
		return st, err
	}
	st.Files = len(jobs)
	st.DataBytes = written

	// Hardlinks, symlinks (one looping, one absolute, one escaping, one to a directory).
	bin := filepath.Join(root, "usr/local/bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return st, fmt.Errorf("benchgen: %w", err)
	}
	for i := range min(100, len(jobs)) {
		if err := os.Link(filepath.Join(root, jobs[i].path), filepath.Join(bin, fmt.Sprintf("tool%d", i))); err != nil {
			return st, fmt.Errorf("benchgen: %w", err)
		}
		st.Hardlinks++
	}
	for name, target := range map[string]string{"loop": "loop", "abs": "/etc/shadow", "up": "../../../../..", "sp": "../lib/python3.11/site-packages"} {
		if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
			return st, fmt.Errorf("benchgen: %w", err)
		}
		st.Symlinks++
	}
	if spec.Whiteouts {
		wd := filepath.Join(root, "usr/share/doc")
		if err := os.MkdirAll(wd, 0o755); err != nil {
			return st, fmt.Errorf("benchgen: %w", err)
		}
		for i := range 200 {
			if err := unix.Mknod(filepath.Join(wd, fmt.Sprintf("removed%d", i)), unix.S_IFCHR, 0); err != nil {
				return st, fmt.Errorf("benchgen: whiteout: %w", err)
			}
			st.Whiteouts++
		}
	}
	if spec.Big {
		big := filepath.Join(root, "var/lib/data")
		if err := os.MkdirAll(big, 0o755); err != nil {
			return st, fmt.Errorf("benchgen: %w", err)
		}
		for i := range 4 {
			n, err := writeFile(filepath.Join(big, fmt.Sprintf("blob%d.bin", i)), 16<<20)
			if err != nil {
				return st, err
			}
			st.DataBytes += n
		}
		f, err := os.Create(filepath.Join(big, "sparse.img"))
		if err != nil {
			return st, fmt.Errorf("benchgen: %w", err)
		}
		if _, err := f.WriteAt(chunk[:4096], 1<<40-4096); err != nil {
			f.Close()
			return st, fmt.Errorf("benchgen: %w", err)
		}
		if err := f.Close(); err != nil {
			return st, fmt.Errorf("benchgen: %w", err)
		}
	}
	return st, writeManifest(root, jobs)
}

// chunk is the content written into files.
var chunk = func() []byte {
	b := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return b
}()

// makeDirs creates the directories level by level, each level concurrently (creating a
// directory waits on the disk more than on the CPU).
func makeDirs(root string, dirs []string, workers int) error {
	byDepth := map[int][]string{}
	maxDepth := 0
	for _, d := range dirs {
		n := strings.Count(d, "/")
		byDepth[n] = append(byDepth[n], d)
		maxDepth = max(maxDepth, n)
	}
	for depth := 0; depth <= maxDepth; depth++ {
		level := byDepth[depth]
		var wg sync.WaitGroup
		errs := make([]error, workers)
		per := (len(level) + workers - 1) / workers
		for w := 0; w*per < len(level); w++ {
			share := level[w*per : min((w+1)*per, len(level))]
			wg.Go(func() {
				for _, d := range share {
					if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
						errs[w] = fmt.Errorf("benchgen: %w", err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return nil
}

// writeFiles writes the files in path order, each worker a contiguous share, so that
// consecutive creations hit the same directory (random order is several times slower).
func writeFiles(root string, jobs []fileJob, workers int) (int64, error) {
	sorted := slices.Clone(jobs)
	slices.SortFunc(sorted, func(a, b fileJob) int { return strings.Compare(a.path, b.path) })
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total int64
	var firstErr error
	per := (len(sorted) + workers - 1) / workers
	for start := 0; start < len(sorted); start += per {
		share := sorted[start:min(start+per, len(sorted))]
		wg.Go(func() {
			var sum int64
			var err error
			for _, j := range share {
				var n int64
				if n, err = writeFile(filepath.Join(root, j.path), j.size); err != nil {
					break
				}
				sum += n
			}
			mu.Lock()
			defer mu.Unlock()
			total += sum
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	return total, firstErr
}

func writeFile(path string, size int) (int64, error) {
	if size == 0 {
		if err := unix.Mknod(path, unix.S_IFREG|0o644, 0); err != nil {
			return 0, fmt.Errorf("benchgen: create %s: %w", path, err)
		}
		return 0, nil
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("benchgen: create %s: %w", path, err)
	}
	defer unix.Close(fd)
	var n int64
	for size > 0 {
		m, err := unix.Write(fd, chunk[:min(size, len(chunk))])
		if err != nil {
			return n, fmt.Errorf("benchgen: write %s: %w", path, err)
		}
		n += int64(m)
		size -= m
	}
	return n, nil
}

func manifestPath(root string) string { return filepath.Clean(root) + "." + ManifestName }

func writeManifest(root string, jobs []fileJob) error {
	f, err := os.Create(manifestPath(root))
	if err != nil {
		return fmt.Errorf("benchgen: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, j := range jobs {
		if strings.ContainsAny(j.path, "\n") {
			continue
		}
		fmt.Fprintln(w, j.path)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("benchgen: %w", err)
	}
	return f.Close()
}

// MutateStats says what Mutate changed.
type MutateStats struct {
	Appended, Created, Deleted int
}

// Touch appends a line to every file of the active log directory (the writes a running
// scheduler makes), so they count as recently changed.
func Touch(root string) (int, error) {
	files, err := activeFiles(root)
	if err != nil {
		return 0, err
	}
	for _, p := range files {
		if err := appendLine(filepath.Join(root, p)); err != nil {
			return 0, err
		}
	}
	return len(files), nil
}

// Mutate changes about fraction of the tree's files the way a running container does: 40%
// appends to the active logs (in place: their directory does not change), 30% new files in
// the active log directory and in /tmp, 30% deletions spread over the whole tree.
func Mutate(root string, fraction float64, seed uint64) (MutateStats, error) {
	var ms MutateStats
	all, err := readManifest(root)
	if err != nil {
		return ms, err
	}
	active, err := activeFiles(root)
	if err != nil {
		return ms, err
	}
	rng := rand.New(rand.NewPCG(seed, seed+1))
	n := int(float64(len(all)) * fraction)
	for i := range n * 4 / 10 {
		if len(active) == 0 {
			break
		}
		if err := appendLine(filepath.Join(root, active[i%len(active)])); err != nil {
			return ms, err
		}
		ms.Appended++
	}
	for i := range n * 3 / 10 {
		dir := ActiveDir + "/new"
		if i%2 == 1 {
			dir = "tmp/work"
		}
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			return ms, fmt.Errorf("benchgen: %w", err)
		}
		if _, err := writeFile(filepath.Join(root, dir, fmt.Sprintf("f%d-%d", seed, i)), 2000); err != nil {
			return ms, err
		}
		ms.Created++
	}
	for range n * 3 / 10 {
		p := all[rng.IntN(len(all))]
		if strings.HasPrefix(p, ActiveDir) {
			continue
		}
		err := os.Remove(filepath.Join(root, p))
		if err == nil {
			ms.Deleted++
		} else if !errors.Is(err, os.ErrNotExist) {
			return ms, fmt.Errorf("benchgen: %w", err)
		}
	}
	return ms, nil
}

func appendLine(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("benchgen: %w", err)
	}
	if _, err := f.Write([]byte("2026-11-25T10:00:00Z INFO task heartbeat\n")); err != nil {
		f.Close()
		return fmt.Errorf("benchgen: %w", err)
	}
	return f.Close()
}

func readManifest(root string) ([]string, error) {
	b, err := os.ReadFile(manifestPath(root))
	if err != nil {
		return nil, fmt.Errorf("benchgen: %w", err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n"), nil
}

func activeFiles(root string) ([]string, error) {
	all, err := readManifest(root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range all {
		if strings.HasPrefix(p, ActiveDir+"/") {
			out = append(out, p)
		}
	}
	return out, nil
}
