// Command logwriter is the workload the CRI tests run as a container: it appends log lines
// to <dir>/<UTC date>/<name> the way an Airflow scheduler does, at a steady -rate (bytes per
// second) for -for, then syncs, prints "done <bytes written>" to stdout and idles until
// SIGTERM or SIGINT, or with -exit N exits with status N (a crashed container). With -for 0
// it writes until signalled. It prints "started" before the first write, so a test reading
// the container's CRI log knows where each phase begins. Every line carries its number
// ("heartbeat <n>"); with -rotate B it moves on to <name>.1, <name>.2, ... every B bytes,
// as log rotation does, and on a signal it prints "stopped <lines written>".
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", "/opt/airflow/logs/scheduler", "log directory; a dated subdirectory is created in it")
	name := flag.String("name", "scheduler.log", "log file name inside the dated directory")
	rate := flag.Int64("rate", 64<<10, "bytes written per second")
	tick := flag.Duration("tick", 100*time.Millisecond, "write interval")
	dur := flag.Duration("for", 0, "how long to write before idling; 0 means until signalled")
	exit := flag.Int("exit", -1, "exit with this status once done instead of idling (-1: idle)")
	rotate := flag.Int64("rotate", 0, "start a new file every this many bytes (0: one file)")
	flag.Parse()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	start := time.Now()
	day := filepath.Join(*dir, start.UTC().Format("2006-01-02"))
	must(os.MkdirAll(day, 0o755))
	f, err := os.OpenFile(filepath.Join(day, *name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(err)
	fmt.Println("started")

	perTick := *rate * int64(*tick) / int64(time.Second)
	t := time.NewTicker(*tick)
	defer t.Stop()
	var written int64
	for n := 1; ; n++ {
		select {
		case <-sig:
			must(f.Close())
			fmt.Printf("stopped %d\n", written/256)
			return
		case now := <-t.C:
			// Write what the rate allows by now, so a late tick does not lower the rate.
			want := perTick * int64(n)
			if *dur > 0 && now.Sub(start) >= *dur {
				want = *rate * int64(*dur) / int64(time.Second)
			}
			for ; written < want; written += 256 {
				if *rotate > 0 && written > 0 && written%*rotate == 0 {
					must(f.Close())
					f, err = os.OpenFile(filepath.Join(day, fmt.Sprintf("%s.%d", *name, written / *rotate)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
					must(err)
				}
				_, err := f.WriteString(line(now, written/256))
				must(err)
			}
			if *dur > 0 && now.Sub(start) >= *dur {
				must(f.Sync())
				must(f.Close())
				fmt.Printf("done %d\n", written)
				if *exit >= 0 {
					os.Exit(*exit)
				}
				<-sig
				return
			}
		}
	}
}

// line is one 256-byte log line.
func line(now time.Time, n int64) string {
	s := fmt.Sprintf("[%s] {scheduler_job_runner.py:412} INFO - heartbeat %d, 3 DAGs processed, 0 queued ",
		now.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), n)
	return s + strings.Repeat(".", 255-len(s)) + "\n"
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "logwriter:", err)
		os.Exit(1)
	}
}
