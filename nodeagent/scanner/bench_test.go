//go:build linux

package scanner

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/layerkeeper/layerkeeper/nodeagent/scanner/internal/benchgen"
)

// benchTree generates a realistic layer of about n entries for a benchmark. The page cache
// is warm after generation: these benchmarks measure warm-cache scans. hack/bench-scan.sh
// runs the larger comparison with du.
func benchTree(b *testing.B, n int) string {
	b.Helper()
	root := filepath.Join(b.TempDir(), "upper")
	if _, err := benchgen.Generate(root, benchgen.Spec{Entries: n, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	return root
}

func BenchmarkScan(b *testing.B) {
	root := benchTree(b, 30000)
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"workers=1", Options{Workers: 1}},
		{"workers=GOMAXPROCS", Options{}},
		{"cpu=0.5", Options{CPULimit: 0.5}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var u Usage
			for b.Loop() {
				u = mustScan(b, root, bc.opts)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(u.Inodes), "ns/entry")
		})
	}
}

// BenchmarkScannerRescan changes 1% of the files (appends to active logs, new files,
// deletions) before each incremental pass.
func BenchmarkScannerRescan(b *testing.B) {
	root := benchTree(b, 30000)
	s, err := NewScanner(root, Options{Now: laterClock(), Rescan: RescanPolicy{FullEvery: 1 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Scan(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var u Usage
	seed := uint64(0)
	for b.Loop() {
		b.StopTimer()
		seed++
		if _, err := benchgen.Mutate(root, 0.01, seed); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if u, err = s.Scan(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(u.CarriedEntries)/float64(u.Inodes), "carried/entry")
}
