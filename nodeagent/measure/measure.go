package measure

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
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
	// Err is why it could not be measured (its layer is unreadable or not where discovery
	// said). A container removed while the pass ran is left out of the Result instead.
	Err error

	// missing is set when the scan failed or saw entries vanish and the upperdir no longer
	// exists: the container may have been removed during the pass.
	missing bool
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
	// discover finds the node's containers (discovery.Discover with opts.Discovery).
	discover func(context.Context) ([]discovery.Container, []error)
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
	m := &Measurer{opts: opts, layers: map[layerKey]*layerState{}}
	m.discover = func(ctx context.Context) ([]discovery.Container, []error) {
		return discovery.Discover(ctx, m.opts.Discovery)
	}
	return m
}

// Measure runs one pass. Progress, when not nil, is called after each container.
func (m *Measurer) Measure(ctx context.Context, progress func(done, total int)) (Result, error) {
	res := Result{Started: m.opts.Now()}
	found, errs := m.discover(ctx)
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
	res.Containers, containers = m.dropRemoved(ctx, res.Containers, containers, states)
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

// dropRemoved leaves out the containers removed while the pass ran: their upperdir is gone
// and a second discovery no longer finds them. Pods come and go all the time; that is no
// problem to report. A missing upperdir of a container still found stays an error (the
// layer is not where the runtime says, or not reachable from here).
func (m *Measurer) dropRemoved(ctx context.Context, measured []Container, found []discovery.Container, states []*layerState) ([]Container, []discovery.Container) {
	if !slices.ContainsFunc(measured, func(c Container) bool { return c.missing }) {
		return measured, found
	}
	again, errs := m.discover(ctx)
	if ctx.Err() != nil || (len(again) == 0 && len(errs) > 0) {
		// The second look failed: nothing says these containers are gone, so their
		// errors stay.
		return measured, found
	}
	still := map[layerKey]bool{}
	for _, c := range again {
		still[layerKey{c.Runtime, c.ID, c.UpperDir}] = true
	}
	var keptMeasured []Container
	var keptFound []discovery.Container
	for i, c := range measured {
		if c.missing && !still[layerKey{c.Runtime, c.ID, c.UpperDir}] {
			if states[i] != nil {
				states[i].seen = false
			}
			continue
		}
		keptMeasured = append(keptMeasured, c)
		keptFound = append(keptFound, found[i])
	}
	return keptMeasured, keptFound
}

// layerGone reports whether the container's upperdir no longer exists.
func layerGone(c discovery.Container) bool {
	_, err := os.Lstat(c.UpperDirPath())
	return errors.Is(err, fs.ErrNotExist)
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
		out.missing = ctx.Err() == nil && layerGone(c)
		return out
	}
	out.Usage = u
	out.missing = len(u.Errors) > 0 && layerGone(c)
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
