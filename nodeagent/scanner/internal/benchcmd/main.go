// Command benchcmd drives hack/bench-scan.sh: it generates trees, times scans and rescans,
// and reports the process's peak RSS (VmHWM), each as one line of JSON.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/layerkeeper/layerkeeper/nodeagent/scanner"
	"github.com/layerkeeper/layerkeeper/nodeagent/scanner/internal/benchgen"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchcmd gen|scan|rescan|passes [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "scan":
		err = scan(os.Args[2:])
	case "rescan":
		err = rescan(os.Args[2:])
	case "passes":
		err = passes(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcmd:", err)
		os.Exit(1)
	}
}

func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	root := fs.String("root", "", "directory to create")
	entries := fs.Int("entries", 300000, "approximate number of entries")
	empty := fs.Bool("empty", false, "write no data")
	big := fs.Bool("big", false, "add large and sparse files")
	whiteouts := fs.Bool("whiteouts", false, "add whiteouts")
	workers := fs.Int("workers", 8, "concurrent writers")
	_ = fs.Parse(args)
	start := time.Now()
	st, err := benchgen.Generate(*root, benchgen.Spec{Entries: *entries, Seed: 42, EmptyFiles: *empty, Big: *big, Whiteouts: *whiteouts, Workers: *workers})
	if err != nil {
		return err
	}
	return emit(map[string]any{"files": st.Files, "dirs": st.Dirs, "dataBytes": st.DataBytes, "seconds": time.Since(start).Seconds()})
}

func scan(args []string) error {
	fs := flag.NewFlagSet("scan", flag.ExitOnError)
	root := fs.String("root", "", "upperdir to scan")
	repeat := fs.Int("repeat", 3, "number of scans")
	workers := fs.Int("workers", 0, "Options.Workers")
	cpu := fs.Float64("cpu", 0, "Options.CPULimit")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the scans here")
	_ = fs.Parse(args)
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var walls []float64
	var u scanner.Usage
	cpu0 := cpuSeconds()
	for range *repeat {
		start := time.Now()
		var err error
		u, err = scanner.Scan(context.Background(), *root, scanner.Options{Workers: *workers, CPULimit: *cpu})
		if err != nil {
			return err
		}
		walls = append(walls, time.Since(start).Seconds())
	}
	return emit(map[string]any{
		"wallMedian": median(walls), "walls": walls, "cpuPerScan": (cpuSeconds() - cpu0) / float64(*repeat),
		"bytes": u.Bytes, "inodes": u.Inodes, "errors": len(u.Errors), "vmHWMKiB": vmHWM(), "topDirs": u.TopDirs,
	})
}

func rescan(args []string) error {
	fs := flag.NewFlagSet("rescan", flag.ExitOnError)
	root := fs.String("root", "", "upperdir to scan")
	rounds := fs.Int("rounds", 3, "number of mutate+rescan rounds")
	fraction := fs.Float64("fraction", 0.01, "fraction of files changed per round")
	window := fs.Duration("window", 5*time.Second, "Rescan.RecentWindow")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the incremental passes here")
	_ = fs.Parse(args)
	// Make the active logs recent, as in a running container, then wait out the window so
	// the rest of the freshly generated tree counts as old.
	time.Sleep(*window + time.Second)
	if _, err := benchgen.Touch(*root); err != nil {
		return err
	}
	s, err := scanner.NewScanner(*root, scanner.Options{Rescan: scanner.RescanPolicy{RecentWindow: *window, FullEvery: 1000}})
	if err != nil {
		return err
	}
	ctx := context.Background()
	start := time.Now()
	first, err := s.Scan(ctx)
	if err != nil {
		return err
	}
	full := time.Since(start).Seconds()
	var walls []float64
	var last scanner.Usage
	var changed []benchgen.MutateStats
	var prof *os.File
	if *profile != "" {
		if prof, err = os.Create(*profile); err != nil {
			return err
		}
		defer prof.Close()
	}
	for i := range *rounds {
		ms, err := benchgen.Mutate(*root, *fraction, uint64(i+1))
		if err != nil {
			return err
		}
		changed = append(changed, ms)
		if prof != nil && i == 0 {
			if err := pprof.StartCPUProfile(prof); err != nil {
				return err
			}
		}
		start := time.Now()
		last, err = s.Scan(ctx)
		if err != nil {
			return err
		}
		walls = append(walls, time.Since(start).Seconds())
	}
	if prof != nil {
		// Only the incremental passes (and the mutations between them) are profiled.
		pprof.StopCPUProfile()
	}
	return emit(map[string]any{
		"firstFullBytes": first.Bytes, "firstFullWall": full, "wallMedian": median(walls), "walls": walls,
		"bytes": last.Bytes, "inodes": last.Inodes, "full": last.Full, "carriedEntries": last.CarriedEntries,
		"changed": changed, "vmHWMKiB": vmHWM(),
	})
}

// passes runs a Scanner over an unchanging tree: one full pass, then incremental ones, and
// reports the peak RSS with the Scanner's per-directory cache.
func passes(args []string) error {
	fs := flag.NewFlagSet("passes", flag.ExitOnError)
	root := fs.String("root", "", "upperdir to scan")
	n := fs.Int("passes", 3, "number of passes")
	_ = fs.Parse(args)
	// An hour ahead: the freshly generated tree counts as old, as a running container's would.
	later := func() time.Time { return time.Now().Add(time.Hour) }
	s, err := scanner.NewScanner(*root, scanner.Options{Now: later})
	if err != nil {
		return err
	}
	var walls []float64
	var u scanner.Usage
	for range *n {
		start := time.Now()
		if u, err = s.Scan(context.Background()); err != nil {
			return err
		}
		walls = append(walls, time.Since(start).Seconds())
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	runtime.KeepAlive(s)
	return emit(map[string]any{"walls": walls, "bytes": u.Bytes, "inodes": u.Inodes, "dirs": u.Dirs, "full": u.Full,
		"vmHWMKiB": vmHWM(), "liveHeapKiB": ms.HeapAlloc >> 10})
}

func emit(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(b))
	return err
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// vmHWM returns the process's peak resident set size in KiB.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}
