// Command workload is the process the discovery tests run as a container: a static binary that
// fills its writable layer the way a logging application does.
//
// It writes -write bytes to -log, creates a file of -deleted bytes, deletes it and keeps it
// open for writing (space only /proc/<pid>/fd reveals), optionally opens -hold-lower read-only
// and deletes it (a lower-layer file, which holds no space in the upper layer), writes -ready
// last, then appends a log line every 200ms until SIGTERM or SIGINT.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	logPath := flag.String("log", "/var/log/app/app.log", "log file to fill")
	write := flag.Int64("write", 1<<20, "bytes to write to the log at start")
	deleted := flag.Int64("deleted", 0, "bytes of a file to delete while keeping it open")
	holdLower := flag.String("hold-lower", "", "file to open read-only, then delete")
	ready := flag.String("ready", "/ready", "file written once everything is in place")
	flag.Parse()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	must(os.MkdirAll(filepath.Dir(*logPath), 0o755))
	log, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(err)
	fill(log, *write)

	var keep []*os.File
	if *deleted > 0 {
		p := filepath.Join(filepath.Dir(*logPath), "rotated.log")
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
		must(err)
		fill(f, *deleted)
		must(f.Sync())
		must(os.Remove(p))
		keep = append(keep, f)
	}
	if *holdLower != "" {
		f, err := os.Open(*holdLower)
		must(err)
		must(os.Remove(*holdLower))
		keep = append(keep, f)
	}
	must(log.Sync())
	must(os.WriteFile(*ready, []byte("ready\n"), 0o644))
	fmt.Println("ready")

	tick := time.NewTicker(200 * time.Millisecond)
	for i := 0; ; i++ {
		select {
		case <-sig:
			for _, f := range keep {
				f.Close()
			}
			return
		case t := <-tick.C:
			fmt.Fprintf(log, "%s line %d\n", t.Format(time.RFC3339Nano), i)
		}
	}
}

// fill writes n bytes of log-like text (not zeros, so the file is not sparse).
func fill(f *os.File, n int64) {
	line := bytes.Repeat([]byte("0123456789abcdef"), 4)
	line[len(line)-1] = '\n'
	for n > 0 {
		b := line
		if int64(len(b)) > n {
			b = b[:n]
		}
		_, err := f.Write(b)
		must(err)
		n -= int64(len(b))
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
}
