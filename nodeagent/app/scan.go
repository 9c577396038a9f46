package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery"
	"github.com/layerkeeper/layerkeeper/nodeagent/measure"
	"github.com/layerkeeper/layerkeeper/nodeagent/scanner"
)

// ScanOptions are the flags of `layerkeeper scan`.
type ScanOptions struct {
	Output           string
	Runtimes         string
	HostRoot         string
	HostProc         string
	ContainerdState  string
	ContainerdRoot   string
	ContainerdSocket socketFlag
	DockerRoot       string
	StorageRoot      string
	StorageRunRoot   string
	Top              int
	HotPaths         stringList
	Workers          int
	CPULimit         float64
	Growth           time.Duration
	IncludeSandboxes bool
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// socketFlag is --containerd-socket: not given means auto-detect (the default socket and
// containerd's config, each if present), a path is a socket that must answer, "" disables
// containerd's API.
type socketFlag struct {
	path string
	set  bool
}

func (f *socketFlag) String() string     { return f.path }
func (f *socketFlag) Set(v string) error { f.path, f.set = v, true; return nil }

// apply sets the flag's choice in discovery options.
func (f socketFlag) apply(o *discovery.Options) {
	if !f.set {
		return
	}
	o.ContainerdSocket, o.NoContainerdSocket = f.path, f.path == ""
}

const containerdSocketUsage = "containerd's gRPC `socket`, through which stopped containerd containers are found (read-only calls); " +
	"one given here must answer, an empty one (--containerd-socket=) disables it (default: " + discovery.DefaultContainerdSocket +
	" and the grpc.address of /etc/containerd/config.toml, each if present)."

const containerdRootUsage = "A containerd root `directory` whose overlayfs snapshots may hold stopped containers' layers, besides those running containers and /etc/containerd/config.toml show (default " +
	discovery.DefaultContainerdRoot + ")."

type usageError struct{ error }

func (usageError) UsageError() bool { return true }

// ScanJSON is the document `layerkeeper scan --output json` prints.
type ScanJSON struct {
	Node        string          `json:"node"`
	ScanTime    time.Time       `json:"scanTime"`
	DurationMS  int64           `json:"durationMilliseconds"`
	Filesystems []ScanFS        `json:"filesystems"`
	Containers  []ScanContainer `json:"containers"`
	Errors      []string        `json:"errors,omitempty"`
}

// ScanFS is one node filesystem holding writable layers.
type ScanFS struct {
	Path           string `json:"path"`
	CapacityBytes  int64  `json:"capacityBytes"`
	AvailableBytes int64  `json:"availableBytes"`
	Inodes         int64  `json:"inodes"`
	InodesFree     int64  `json:"inodesFree"`
}

// ScanContainer is one container's writable layer.
type ScanContainer struct {
	Runtime              v1alpha1.Runtime   `json:"runtime"`
	ContainerID          string             `json:"containerID"`
	Running              bool               `json:"running"`
	Namespace            string             `json:"namespace,omitempty"`
	Pod                  string             `json:"pod,omitempty"`
	Container            string             `json:"container"`
	UpperDir             string             `json:"upperDir"`
	Bytes                int64              `json:"bytes"`
	ApparentBytes        int64              `json:"apparentBytes"`
	Inodes               int64              `json:"inodes"`
	DeletedOpenBytes     int64              `json:"deletedOpenBytes"`
	GrowthBytesPerMinute *int64             `json:"growthBytesPerMinute,omitempty"`
	HotPaths             []scanner.DirUsage `json:"hotPaths"`
	RequestedPaths       []scanner.DirUsage `json:"requestedPaths,omitempty"`
	Errors               []string           `json:"errors,omitempty"`
}

func (o *ScanOptions) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("layerkeeper scan", flag.ContinueOnError)
	fs.StringVar(&o.Output, "output", "table", "Output format: table (sorted by size) or json.")
	fs.StringVar(&o.Runtimes, "runtime", "", "Only these runtimes, comma-separated: containerd, docker, containers-storage (default: all found).")
	fs.StringVar(&o.HostRoot, "host-root", "/", "Where the host's / is mounted (for running inside a container or on a mounted host image).")
	fs.StringVar(&o.HostProc, "host-proc", "", "The host's /proc (default <host-root>/proc).")
	fs.StringVar(&o.ContainerdState, "containerd-state", "", "A containerd state directory to look in besides those the mount table shows (default /run/containerd).")
	fs.StringVar(&o.ContainerdRoot, "containerd-root", "", containerdRootUsage)
	fs.Var(&o.ContainerdSocket, "containerd-socket", containerdSocketUsage)
	fs.StringVar(&o.DockerRoot, "docker-root", "", "A Docker data root to look in (default /var/lib/docker).")
	fs.StringVar(&o.StorageRoot, "storage-root", "", "A containers/storage graph root to look in (default /var/lib/containers/storage).")
	fs.StringVar(&o.StorageRunRoot, "storage-runroot", "", "A containers/storage run root to look in (default /run/containers/storage).")
	fs.IntVar(&o.Top, "top", 3, "Largest directories shown per container (json: listed; table: the largest one).")
	fs.Var(&o.HotPaths, "path", "A container path to measure exactly in every container (repeatable), e.g. --path /opt/airflow/logs.")
	fs.IntVar(&o.Workers, "workers", 2, "Containers scanned at once.")
	fs.Float64Var(&o.CPULimit, "cpu-limit", 0, "CPU cores each container's scan may use (0: no limit).")
	fs.DurationVar(&o.Growth, "growth", 0, "Measure twice this far apart and show the growth rate (e.g. 10s); 0 measures once.")
	fs.BoolVar(&o.IncludeSandboxes, "include-sandboxes", false, "Also show pod sandbox (pause) containers.")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: layerkeeper scan [flags]\n\nMeasures every container's writable layer on this host once and prints it.\nNo cluster is needed; run it as root on a node running containerd, Docker, CRI-O or podman.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// RunScan measures this host's writable layers once and prints them.
func RunScan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := ScanOptions{}
	fs := o.flagSet()
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	if o.Output != "table" && o.Output != "json" {
		return usageError{fmt.Errorf("--output must be table or json, not %q", o.Output)}
	}
	var runtimes []v1alpha1.Runtime
	for _, r := range strings.Split(o.Runtimes, ",") {
		switch r = strings.TrimSpace(r); v1alpha1.Runtime(r) {
		case "":
		case v1alpha1.RuntimeContainerd, v1alpha1.RuntimeDocker, v1alpha1.RuntimeContainersStorage:
			runtimes = append(runtimes, v1alpha1.Runtime(r))
		default:
			return usageError{fmt.Errorf("--runtime: unknown runtime %q (containerd, docker, containers-storage)", r)}
		}
	}
	for _, p := range o.HotPaths {
		if !strings.HasPrefix(p, "/") {
			return usageError{fmt.Errorf("--path %q: must be an absolute container path", p)}
		}
	}
	dopts := discovery.Options{HostRoot: o.HostRoot, HostProc: o.HostProc, Runtimes: runtimes,
		ContainerdState: o.ContainerdState, ContainerdRoot: o.ContainerdRoot,
		DockerRoot: o.DockerRoot, StorageRoot: o.StorageRoot, StorageRunRoot: o.StorageRunRoot}
	o.ContainerdSocket.apply(&dopts)
	m := measure.New(measure.Options{
		Discovery:        dopts,
		Scan:             scanner.Options{TopN: o.Top, CPULimit: o.CPULimit},
		Workers:          o.Workers,
		IncludeSandboxes: o.IncludeSandboxes,
		HotPathsFor:      func(discovery.Container) []string { return o.HotPaths },
	})
	p := newProgress(stderr)
	res, err := m.Measure(ctx, p.update)
	if err == nil && o.Growth > 0 {
		p.note(fmt.Sprintf("measuring again in %s for growth rates", o.Growth))
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(o.Growth):
			res, err = m.Measure(ctx, p.update)
		}
	}
	p.finish()
	if err != nil {
		return err
	}
	doc := toJSON(res, o.HostRoot)
	for _, e := range doc.Errors {
		fmt.Fprintf(stderr, "warning: %s\n", e)
	}
	if o.Output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	printTable(stdout, doc)
	if len(doc.Containers) == 0 {
		fmt.Fprintln(stderr, "no container with a writable layer found (containerd, Docker, CRI-O, podman); is this the host, and are you root?")
	}
	return nil
}

func nodeName(hostRoot string) string {
	if b, err := os.ReadFile(filepath.Join(hostRoot, "etc", "hostname")); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	h, _ := os.Hostname()
	return h
}

func toJSON(res measure.Result, hostRoot string) ScanJSON {
	doc := ScanJSON{Node: nodeName(hostRoot), ScanTime: res.Started.UTC(), DurationMS: res.Duration.Milliseconds(),
		Filesystems: []ScanFS{}, Containers: []ScanContainer{}}
	for _, f := range res.Filesystems {
		doc.Filesystems = append(doc.Filesystems, ScanFS{Path: f.Path, CapacityBytes: f.CapacityBytes,
			AvailableBytes: f.AvailableBytes, Inodes: f.Inodes, InodesFree: f.InodesFree})
	}
	for _, e := range res.Errors {
		doc.Errors = append(doc.Errors, e.Error())
	}
	for _, c := range res.Containers {
		sc := ScanContainer{Runtime: c.Runtime, ContainerID: c.ID, Running: c.Running, Namespace: c.Namespace,
			Pod: c.Pod, Container: c.Name, UpperDir: c.UpperDir, Bytes: c.Usage.Bytes, ApparentBytes: c.Usage.ApparentBytes,
			Inodes: c.Usage.Inodes, DeletedOpenBytes: c.DeletedOpenBytes, HotPaths: c.Usage.TopDirs,
			RequestedPaths: c.Usage.HotPaths, Errors: c.Usage.Errors}
		if sc.HotPaths == nil {
			sc.HotPaths = []scanner.DirUsage{}
		}
		if c.HasGrowth {
			g := c.GrowthBytesPerMinute
			sc.GrowthBytesPerMinute = &g
		}
		if c.Err != nil {
			sc.Errors = append(sc.Errors, c.Err.Error())
			doc.Errors = append(doc.Errors, fmt.Sprintf("%s %s: %v", c.Runtime, c.ID, c.Err))
		}
		doc.Containers = append(doc.Containers, sc)
	}
	return doc
}

func printTable(w io.Writer, doc ScanJSON) {
	for _, f := range doc.Filesystems {
		pct := 0.0
		if f.CapacityBytes > 0 {
			pct = 100 * float64(f.AvailableBytes) / float64(f.CapacityBytes)
		}
		fmt.Fprintf(w, "filesystem %s: %s free of %s (%.1f%%), %d inodes free\n", f.Path,
			evaluation.HumanBytes(f.AvailableBytes), evaluation.HumanBytes(f.CapacityBytes), pct, f.InodesFree)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUNTIME\tCONTAINER\tSTATE\tSIZE\tINODES\tGROWTH\tTOP HOT PATH")
	for _, c := range doc.Containers {
		name := c.Container
		if c.Pod != "" {
			name = c.Namespace + "/" + c.Pod + "/" + c.Container
		}
		state := "stopped"
		if c.Running {
			state = "running"
		}
		growth := "-"
		if c.GrowthBytesPerMinute != nil {
			growth = evaluation.HumanBytes(*c.GrowthBytesPerMinute) + "/min"
		}
		hot := "-"
		if top, ok := topDir(c.HotPaths); ok {
			hot = fmt.Sprintf("%s (%s)", top.Path, evaluation.HumanBytes(top.Bytes))
		}
		size := evaluation.HumanBytes(c.Bytes)
		if len(c.Errors) > 0 && c.Bytes == 0 {
			size = "error"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", c.Runtime, sanitize(name), state, size, c.Inodes, growth, sanitize(hot))
	}
	tw.Flush()
}

// sanitize keeps container-controlled text on one printable line.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// progress prints a line on stderr every second once a scan has taken longer than a second.
type progress struct {
	w           io.Writer
	start       time.Time
	mu          sync.Mutex
	done, total int
	shown       bool
	stop        chan struct{}
	wg          sync.WaitGroup
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now(), stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.shown = true
				fmt.Fprintf(p.w, "scanning: %d of %d containers measured (%s)\n", p.done, p.total, time.Since(p.start).Round(100*time.Millisecond))
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *progress) update(done, total int) {
	p.mu.Lock()
	p.done, p.total = done, total
	p.mu.Unlock()
}

func (p *progress) note(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, s)
}

func (p *progress) finish() {
	close(p.stop)
	p.wg.Wait()
	if p.shown {
		fmt.Fprintf(p.w, "scanned in %s\n", time.Since(p.start).Round(100*time.Millisecond))
	}
}

// topDir names the most specific directory holding most of the layer, by the same rule the
// controller uses for the hot-path annotation.
func topDir(dirs []scanner.DirUsage) (v1alpha1.HotPathUsage, bool) {
	hps := make([]v1alpha1.HotPathUsage, len(dirs))
	for i, d := range dirs {
		hps[i] = v1alpha1.HotPathUsage{Path: d.Path, Bytes: d.Bytes, Files: d.Files}
	}
	return evaluation.TopHotPath(hps)
}
