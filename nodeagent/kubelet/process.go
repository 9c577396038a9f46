package kubelet

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Process is a process of the host named kubelet.
type Process struct {
	// PID is its PID in the host's PID namespace.
	PID int
	// Args is its command line, argv[0] first.
	Args []string
	// PIDNamespace is its PID namespace ("pid:[4026531836]"); empty when unknown.
	PIDNamespace string
}

// maxCmdline caps a /proc/<pid>/cmdline read.
const maxCmdline = 1 << 20

// listKubelets returns the processes of hostProc whose command name (/proc/<pid>/comm, the
// executable's base name) is "kubelet", and the PID namespace of the host's PID 1. A kubelet
// built into another binary (k3s) is not found.
func listKubelets(hostProc string) ([]Process, string, error) {
	ents, err := os.ReadDir(hostProc)
	if err != nil {
		return nil, "", fmt.Errorf("listing processes: %w", err)
	}
	var out []Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(hostProc, e.Name())
		comm, err := readSmall(filepath.Join(dir, "comm"), 64)
		if err != nil || strings.TrimSpace(string(comm)) != "kubelet" {
			continue // not the kubelet, or gone
		}
		b, err := readSmall(filepath.Join(dir, "cmdline"), maxCmdline)
		if err != nil || len(b) == 0 {
			continue // exited, or a zombie
		}
		args := strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00")
		ns, _ := os.Readlink(filepath.Join(dir, "ns", "pid"))
		out = append(out, Process{PID: pid, Args: args, PIDNamespace: ns})
	}
	hostNS, _ := os.Readlink(filepath.Join(hostProc, "1", "ns", "pid"))
	return out, hostNS, nil
}

// readSmall reads a file of at most max bytes.
func readSmall(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, max)
	}
	return b, nil
}

// pick chooses this node's kubelet among the processes named kubelet: the only one; else those
// in the PID namespace of the host's PID 1 (kubelets of nested clusters run in their own);
// else the one whose --hostname-override is the node's name. More than one left is an error
// (the agent cannot tell which is its node's).
func pick(procs []Process, hostPIDNamespace, node string) (Process, error) {
	if len(procs) == 0 {
		return Process{}, fmt.Errorf("no kubelet process")
	}
	narrow := func(keep func(Process) bool) {
		var left []Process
		for _, p := range procs {
			if keep(p) {
				left = append(left, p)
			}
		}
		if len(left) > 0 {
			procs = left
		}
	}
	if len(procs) > 1 && hostPIDNamespace != "" {
		narrow(func(p Process) bool { return p.PIDNamespace == hostPIDNamespace })
	}
	if len(procs) > 1 && node != "" {
		narrow(func(p Process) bool {
			if len(p.Args) == 0 {
				return false
			}
			f, err := ParseFlags(p.Args[1:])
			return err == nil && f.HostnameOverride == node
		})
	}
	if len(procs) > 1 {
		pids := make([]int, 0, len(procs))
		for _, p := range procs {
			pids = append(pids, p.PID)
		}
		slices.Sort(pids)
		return Process{}, fmt.Errorf("%d kubelet processes (PIDs %v) and none tells it is node %q's", len(procs), pids, node)
	}
	return procs[0], nil
}
