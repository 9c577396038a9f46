// Command logwriter behaves like an Airflow scheduler filling its writable layer: it appends
// numbered log lines, "<seq> <UTC timestamp> <padding>\n" of -line-size bytes each, to files in
// dated directories <dir>/<YYYY-MM-DD>/ at a steady -rate (bytes per second).
//
// With -rotate-bytes N it starts a new file (<stem>.000001<ext>, <stem>.000002<ext>, ... from
// -name) whenever the next line would take the current one past N bytes, so closed files
// accumulate beside the one it keeps open; without it everything goes to <dir>/<date>/<name>.
// A new UTC day starts a new dated directory.
//
// It keeps the sequence number of its last line in -seq-file (default <dir>/.seq, one
// right-aligned decimal number, rewritten in place after every batch) and prints
// "seq <n> bytes <b>" to stdout every -report, so a test can count the lines it wrote. A
// sequence file left by an earlier run in the same layer is continued from.
//
// It writes for -for (or -lines lines; 0 for both: until signalled), then syncs, prints
// "done <bytes> lines <last seq>" and idles until SIGTERM or SIGINT, or with -exit N exits
// with status N (a crashed container). It prints "started" before the first write.
//
// SIGUSR1 writes -burst-bytes of lines at once, beside the steady rate, and prints
// "burst <bytes> seq <n>": a test crosses a threshold at a moment it chooses. SIGUSR2 deletes
// every log file written so far (the sequence file stays, numbering continues) and prints
// "cleaned <files> files <bytes> bytes": the layer drops back, as after a log clean-up job.
// With -rate 0 only bursts write. Every flag
// can also be set by an environment variable: LOGWRITER_<FLAG> with dashes as underscores
// (LOGWRITER_RATE, LOGWRITER_ROTATE_BYTES...); flags win.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	dir, name, seqFile string
	rate, lineSize     int64
	rotateBytes, lines int64
	burstBytes         int64
	tick, dur, report  time.Duration
	exit               int
}

func main() {
	c := parseFlags()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	burst := make(chan os.Signal, 1)
	signal.Notify(burst, syscall.SIGUSR1)
	clean := make(chan os.Signal, 1)
	signal.Notify(clean, syscall.SIGUSR2)

	w, err := newWriter(c)
	must(err)
	fmt.Println("started")

	start := time.Now()
	tick := time.NewTicker(c.tick)
	defer tick.Stop()
	lastReport := start
	for {
		select {
		case <-sig:
			must(w.close())
			w.printSeq()
			return
		case <-burst:
			now := time.Now()
			var n int64
			for n < c.burstBytes {
				before := w.written
				must(w.writeLine(now))
				n += w.written - before
			}
			w.bursts += n
			must(w.sync())
			must(w.saveSeq())
			fmt.Printf("burst %d seq %d\n", n, w.seq)
		case <-clean:
			files, bytes, err := w.clean()
			must(err)
			fmt.Printf("cleaned %d files %d bytes\n", files, bytes)
		case now := <-tick.C:
			elapsed := now.Sub(start)
			finished := c.dur > 0 && elapsed >= c.dur
			if finished {
				elapsed = c.dur
			}
			// Write what the rate allows by now, so a late tick does not lower the rate.
			want := c.rate * int64(elapsed) / int64(time.Second)
			for w.written-w.bursts < want && (c.lines == 0 || w.lines < c.lines) {
				must(w.writeLine(now))
			}
			must(w.saveSeq())
			if c.lines > 0 && w.lines >= c.lines {
				finished = true
			}
			if now.Sub(lastReport) >= c.report || finished {
				w.printSeq()
				lastReport = now
			}
			if finished {
				must(w.close())
				fmt.Printf("done %d lines %d\n", w.written, w.seq)
				if c.exit >= 0 {
					os.Exit(c.exit)
				}
				<-sig
				return
			}
		}
	}
}

func parseFlags() config {
	var c config
	flag.StringVar(&c.dir, "dir", env("dir", "/opt/airflow/logs/scheduler"), "log directory; dated subdirectories are created in it")
	flag.StringVar(&c.name, "name", env("name", "scheduler.log"), "log file name inside the dated directory (numbered when rotating)")
	flag.StringVar(&c.seqFile, "seq-file", env("seq_file", ""), "file holding the last sequence number written (default <dir>/.seq; \"-\" for none)")
	flag.Int64Var(&c.rate, "rate", envInt("rate", 64<<10), "bytes written per second")
	flag.Int64Var(&c.lineSize, "line-size", envInt("line_size", 256), "bytes per line, newline included (at least 64)")
	flag.Int64Var(&c.rotateBytes, "rotate-bytes", envInt("rotate_bytes", 0), "start a new file when the current one would exceed this many bytes (0: never)")
	flag.Int64Var(&c.lines, "lines", envInt("lines", 0), "stop after this many lines (0: no limit)")
	flag.DurationVar(&c.tick, "tick", envDuration("tick", 100*time.Millisecond), "write interval")
	flag.DurationVar(&c.dur, "for", envDuration("for", 0), "how long to write before idling (0: until signalled or -lines)")
	flag.DurationVar(&c.report, "report", envDuration("report", time.Second), "how often to print the sequence number to stdout")
	flag.Int64Var(&c.burstBytes, "burst-bytes", envInt("burst_bytes", 1<<20), "bytes written at once on SIGUSR1")
	flag.IntVar(&c.exit, "exit", int(envInt("exit", -1)), "exit with this status once done instead of idling (-1: idle)")
	flag.Parse()
	if c.lineSize < 64 {
		fail(fmt.Errorf("-line-size %d: at least 64 bytes", c.lineSize))
	}
	if c.rate < 0 || c.burstBytes < 0 || c.tick <= 0 || c.report <= 0 {
		fail(fmt.Errorf("-rate and -burst-bytes must not be negative, -tick and -report must be positive"))
	}
	if c.seqFile == "" {
		c.seqFile = filepath.Join(c.dir, ".seq")
	}
	return c
}

// writer appends lines to the current file and rotates it.
type writer struct {
	c           config
	f           *os.File
	seqF        *os.File
	day         string // UTC date of the current file's directory
	index       int    // number of the current file when rotating
	fileBytes   int64  // bytes in the current file
	written     int64  // bytes written by this process
	bursts      int64  // of which written by bursts (outside the steady rate)
	lines       int64  // lines written by this process
	seq         int64  // sequence number of the last line (continues an earlier run's)
	savedSeq    int64
	pad         string
	stem, ext   string
	currentPath string
}

func newWriter(c config) (*writer, error) {
	w := &writer{c: c, pad: strings.Repeat(".", int(c.lineSize)), savedSeq: -1}
	w.ext = filepath.Ext(c.name)
	w.stem = strings.TrimSuffix(c.name, w.ext)
	if c.seqFile != "-" {
		if err := os.MkdirAll(filepath.Dir(c.seqFile), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(c.seqFile, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, err
		}
		b := make([]byte, 64)
		n, _ := f.ReadAt(b, 0)
		if prev, err := strconv.ParseInt(strings.TrimSpace(string(b[:n])), 10, 64); err == nil && prev > 0 {
			w.seq = prev
		}
		w.seqF = f
	}
	return w, w.saveSeq()
}

// writeLine appends the next line, opening (or rotating to) the right file first.
func (w *writer) writeLine(now time.Time) error {
	day := now.UTC().Format("2006-01-02")
	rotate := w.c.rotateBytes > 0 && w.fileBytes > 0 && w.fileBytes+w.c.lineSize > w.c.rotateBytes
	if w.f == nil || day != w.day || rotate {
		if err := w.open(day); err != nil {
			return err
		}
	}
	w.seq++
	head := strconv.FormatInt(w.seq, 10) + " " + now.UTC().Format("2006-01-02T15:04:05.000000Z") + " "
	line := head
	if n := int(w.c.lineSize) - len(head) - 1; n > 0 {
		line += w.pad[:n]
	}
	line += "\n"
	if _, err := w.f.WriteString(line); err != nil {
		return err
	}
	w.fileBytes += int64(len(line))
	w.written += int64(len(line))
	w.lines++
	return nil
}

// open closes the current file and opens the next one in the directory of day.
func (w *writer) open(day string) error {
	if w.f != nil {
		if err := w.f.Close(); err != nil {
			return err
		}
		w.f = nil
	}
	dir := filepath.Join(w.c.dir, day)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name := w.c.name
	if w.c.rotateBytes > 0 {
		w.index++
		name = fmt.Sprintf("%s.%06d%s", w.stem, w.index, w.ext)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.day, w.fileBytes, w.currentPath = f, day, fi.Size(), f.Name()
	return nil
}

// saveSeq rewrites the sequence file in place (fixed width, so a reader never sees a
// shorter number with a stale tail) when the sequence moved.
func (w *writer) saveSeq() error {
	if w.seqF == nil || w.seq == w.savedSeq {
		return nil
	}
	if _, err := w.seqF.WriteAt([]byte(fmt.Sprintf("%20d\n", w.seq)), 0); err != nil {
		return err
	}
	w.savedSeq = w.seq
	return nil
}

func (w *writer) printSeq() {
	fmt.Printf("seq %d bytes %d file %s\n", w.seq, w.written, w.currentPath)
}

// sync flushes the current file to disk.
func (w *writer) sync() error {
	if w.f == nil {
		return nil
	}
	return w.f.Sync()
}

// clean closes the current file and deletes every regular file under the log directory but
// the sequence file; the next line opens a new file. It returns the files and bytes removed.
func (w *writer) clean() (files, bytes int64, err error) {
	if w.f != nil {
		if err := w.f.Close(); err != nil {
			return 0, 0, err
		}
		w.f = nil
	}
	err = filepath.WalkDir(w.c.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || p == w.c.seqFile {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		files++
		bytes += fi.Size()
		return nil
	})
	return files, bytes, err
}

// close syncs and closes the current file and the sequence file.
func (w *writer) close() error {
	if err := w.saveSeq(); err != nil {
		return err
	}
	if w.f != nil {
		if err := w.f.Sync(); err != nil {
			return err
		}
		if err := w.f.Close(); err != nil {
			return err
		}
		w.f = nil
	}
	if w.seqF != nil {
		if err := w.seqF.Close(); err != nil {
			return err
		}
		w.seqF = nil
	}
	return nil
}

func env(name, def string) string {
	if v, ok := os.LookupEnv("LOGWRITER_" + strings.ToUpper(name)); ok {
		return v
	}
	return def
}

func envInt(name string, def int64) int64 {
	v := env(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		fail(fmt.Errorf("LOGWRITER_%s=%q: %w", strings.ToUpper(name), v, err))
	}
	return n
}

func envDuration(name string, def time.Duration) time.Duration {
	v := env(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		fail(fmt.Errorf("LOGWRITER_%s=%q: %w", strings.ToUpper(name), v, err))
	}
	return d
}

func must(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "logwriter:", err)
	os.Exit(1)
}
