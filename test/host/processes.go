package host

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Process is a process identified by its PID and its start time (clock ticks after boot, the
// 22nd field of /proc/<pid>/stat), which together name one process for the machine's uptime.
type Process struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
}

// Identify returns the Process running as pid now.
func Identify(pid int) (Process, error) {
	st, _, err := stat(pid)
	if err != nil {
		return Process{}, err
	}
	return Process{PID: pid, StartTime: st}, nil
}

// stat returns a process's start time and state letter ('R', 'S', 'Z'...).
func stat(pid int) (uint64, byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	st, err := strconv.ParseUint(f[19], 10, 64) // field 22 overall
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return st, f[0][0], nil
}

// Alive reports whether the process still runs: same PID, same start time, not a zombie.
func (p Process) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	st, state, err := stat(p.PID)
	return err == nil && st == p.StartTime && state != 'Z'
}

// Signal sends sig to the process, only if it is still the recorded one. With group set it
// signals the process group the process leads (a harness starts each daemon as the leader of
// its own session, so its group holds only the daemon and its helpers).
func (p Process) Signal(sig unix.Signal, group bool) error {
	if !p.Alive() {
		return nil
	}
	target := p.PID
	if group {
		if pgid, err := unix.Getpgid(p.PID); err == nil && pgid == p.PID {
			target = -p.PID
		}
	}
	if err := unix.Kill(target, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signalling %d: %w", p.PID, err)
	}
	return nil
}

// Stop sends SIGTERM (to the process group it leads, if group), waits up to grace for the
// process to exit, then sends SIGKILL and waits up to 10 s more. It reports whether the
// process had to be killed, and an error if it outlived SIGKILL.
func (p Process) Stop(grace time.Duration, group bool) (killed bool, err error) {
	if !p.Alive() {
		return false, nil
	}
	if err := p.Signal(unix.SIGTERM, group); err != nil {
		return false, err
	}
	if p.wait(grace) {
		return false, nil
	}
	if err := p.Signal(unix.SIGKILL, group); err != nil {
		return true, err
	}
	if p.wait(10 * time.Second) {
		return true, nil
	}
	return true, fmt.Errorf("process %d survived SIGKILL", p.PID)
}

func (p Process) wait(d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !p.Alive() {
			return true
		}
	}
	return !p.Alive()
}

// Cmdline returns the NUL-separated command line of pid ("" when it is gone).
func Cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	return string(bytes.TrimRight(b, "\x00"))
}

// ShimPIDs returns the PIDs of the containerd shims serving the containerd whose socket is
// socket (their -address argument), so that only one containerd's shims are ever chosen.
func ShimPIDs(socket string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		args := strings.Split(Cmdline(pid), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if (args[i] == "-address" || args[i] == "--address") && args[i+1] == socket {
				pids = append(pids, pid)
				break
			}
		}
	}
	sort.Ints(pids)
	return pids
}

// ShimSocketDir is where containerd 1.6 puts its shims' sockets, whatever its state directory.
const ShimSocketDir = "/run/containerd/s"

// RemoveShimSockets removes the sockets of the shims of the containerd whose state directory
// is state, named in each task bundle's address file: a shim removes its own when it exits
// cleanly, not when it is killed.
func RemoveShimSockets(state string) {
	files, _ := filepath.Glob(filepath.Join(state, "io.containerd.runtime.v2.task", "*", "*", "address"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		p := strings.TrimPrefix(strings.TrimSpace(string(b)), "unix://")
		if filepath.Dir(p) != ShimSocketDir {
			continue
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			_ = os.Remove(p)
		}
	}
}

// KillPIDs SIGKILLs each pid that still runs (identified now, just before the signal) and
// waits up to timeout for all of them to be gone.
func KillPIDs(pids []int, timeout time.Duration) error {
	var procs []Process
	for _, pid := range pids {
		if p, err := Identify(pid); err == nil {
			procs = append(procs, p)
			_ = p.Signal(unix.SIGKILL, false)
		}
	}
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		var left []int
		for _, p := range procs {
			if p.Alive() {
				left = append(left, p.PID)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v survived SIGKILL", left)
		}
	}
}
