package measure

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery"
	"github.com/layerkeeper/layerkeeper/nodeagent/scanner"
)

// Options configure a Measurer.
type Options struct {
	// Discovery says where the host is and which runtimes to look for.
	Discovery discovery.Options
	// Scan tunes each container's scan; HotPaths is filled per container from HotPathsFor.
	Scan scanner.Options
	// Workers is the number of containers scanned at once (default 2). Each scan also has
	// Scan.Workers directory readers; the whole pass's CPU is bounded by Scan.CPULimit per scan.
	Workers int
	// IncludeSandboxes measures pod sandbox (pause) containers too.
	IncludeSandboxes bool
	// HotPathsFor returns the container paths to measure exactly for a container (the
	// hotPaths of the policies selecting its pod); nil means none.
	HotPathsFor func(discovery.Container) []string
	// GrowthHalfLife is the half-life of the growth-rate average (default 5m).
	GrowthHalfLife time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Container is one container's measurement.
type Container struct {
	discovery.Container
	// Usage is the scan of its upperdir; zero when Err is set.
	Usage scanner.Usage
	// DeletedOpenBytes are held by files its processes deleted but keep open.
	DeletedOpenBytes int64
	// GrowthBytesPerMinute is the smoothed growth of Usage.Bytes; HasGrowth says whether
	// there were two passes to compute it from.
	GrowthBytesPerMinute int64
	HasGrowth            bool
	// HotPathGrowth is the smoothed growth per hot or top directory path.
	HotPathGrowth map[string]int64
	// Err is why it could not be measured (the container vanished, its layer is unreadable).
	Err error
}

// Result is one pass over the node.
type Result struct {
	Containers  []Container
	Filesystems []discovery.FS
	// Errors are discovery and statfs problems (per-container scan errors are in Containers).
	Errors   []error
	Started  time.Time
	Duration time.Duration
}

// Runtimes returns the runtimes the pass found containers of.
func (r Result) Runtimes() []v1alpha1.Runtime {
	var out []v1alpha1.Runtime
	for _, c := range r.Containers {
		if !slices.Contains(out, c.Runtime) {
			out = append(out, c.Runtime)
		}
	}
	slices.Sort(out)
	return out
}

type layerKey struct {
	runtime   v1alpha1.Runtime
	id, upper string
}

type layerState struct {
	scanner  *scanner.Scanner
	hotPaths []string
	growth   Growth
	hot      map[string]*Growth
	seen     bool
}

// Measurer measures a node pass after pass, keeping per-layer scanners and growth averages.
// It is safe for use by one goroutine at a time.
type Measurer struct {
	opts   Options
	layers map[layerKey]*layerState
}

// New returns a Measurer.
func New(opts Options) *Measurer {
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.GrowthHalfLife <= 0 {
		opts.GrowthHalfLife = 5 * time.Minute
	}
	return &Measurer{opts: opts, layers: map[layerKey]*layerState{}}
}

// Measure runs one pass. Progress, when not nil, is called after each container.
func (m *Measurer) Measure(ctx context.Context, progress func(done, total int)) (Result, error) {
	res := Result{Started: m.opts.Now()}
	found, errs := discovery.Discover(ctx, m.opts.Discovery)
	res.Errors = append(res.Errors, errs...)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	var containers []discovery.Container
	for _, c := range found {
		if c.Sandbox && !m.opts.IncludeSandboxes {
			continue
		}
		containers = append(containers, c)
	}
	res.Containers = make([]Container, len(containers))
	for k := range m.layers {
		m.layers[k].seen = false
	}
	states := make([]*layerState, len(containers))
	for i, c := range containers {
		st, err := m.state(c)
		if err != nil {
			res.Containers[i] = Container{Container: c, Err: err}
			continue
		}
		states[i] = st
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	work := make(chan int)
	for w := 0; w < m.opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if states[i] != nil {
					res.Containers[i] = m.measureOne(ctx, containers[i], states[i])
				}
				mu.Lock()
				done++
				if progress != nil {
					progress(done, len(containers))
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range containers {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for k, st := range m.layers {
		if !st.seen {
			delete(m.layers, k) // the container is gone: forget its scanner and averages
		}
	}
	fss, fsErrs := discovery.StatFilesystems(containers)
	res.Filesystems = fss
	res.Errors = append(res.Errors, fsErrs...)
	sort.SliceStable(res.Containers, func(a, b int) bool { return res.Containers[a].Usage.Bytes > res.Containers[b].Usage.Bytes })
	res.Duration = m.opts.Now().Sub(res.Started)
	return res, nil
}

// state returns the per-layer state, making a new scanner when the layer or its hot paths
// are new.
func (m *Measurer) state(c discovery.Container) (*layerState, error) {
	var hot []string
	if m.opts.HotPathsFor != nil {
		hot = m.opts.HotPathsFor(c)
	}
	key := layerKey{c.Runtime, c.ID, c.UpperDir}
	st := m.layers[key]
	if st == nil || !slices.Equal(st.hotPaths, hot) {
		opts := m.opts.Scan
		opts.HotPaths = hot
		sc, err := scanner.NewScanner(c.UpperDirPath(), opts)
		if err != nil {
			return nil, err
		}
		prev := st
		st = &layerState{scanner: sc, hotPaths: hot, hot: map[string]*Growth{}}
		if prev != nil {
			st.growth, st.hot = prev.growth, prev.hot
		}
		m.layers[key] = st
	}
	st.seen = true
	return st, nil
}

func (m *Measurer) measureOne(ctx context.Context, c discovery.Container, st *layerState) Container {
	out := Container{Container: c}
	u, err := st.scanner.Scan(ctx)
	if err != nil {
		out.Err = fmt.Errorf("scanning %s: %w", c.UpperDir, err)
		return out
	}
	out.Usage = u
	if c.Running && len(c.PIDs) > 0 {
		if n, err := discovery.DeletedOpenBytes(m.hostProc(), c.PIDs); err == nil {
			out.DeletedOpenBytes = n
		}
	}
	now := m.opts.Now()
	out.GrowthBytesPerMinute, out.HasGrowth = st.growth.Observe(u.Bytes, now)
	out.HotPathGrowth = map[string]int64{}
	seen := map[string]bool{}
	for _, list := range [][]scanner.DirUsage{u.TopDirs, u.HotPaths} {
		for _, d := range list {
			g := st.hot[d.Path]
			if g == nil {
				g = &Growth{HalfLife: m.opts.GrowthHalfLife}
				st.hot[d.Path] = g
			}
			seen[d.Path] = true
			if rate, ok := g.Observe(d.Bytes, now); ok {
				out.HotPathGrowth[d.Path] = rate
			}
		}
	}
	for p := range st.hot {
		if !seen[p] {
			delete(st.hot, p)
		}
	}
	st.growth.HalfLife = m.opts.GrowthHalfLife
	return out
}

func (m *Measurer) hostProc() string {
	if m.opts.Discovery.HostProc != "" {
		return m.opts.Discovery.HostProc
	}
	root := m.opts.Discovery.HostRoot
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, "proc")
}
