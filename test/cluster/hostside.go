package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Baseline is what the host looked like before the cluster started, in the places the
// kubelet and containerd change whatever they are told: the sysctls the kubelet sets
// (vm.overcommit_memory, kernel.panic...), the iptables chains it creates (KUBE-FIREWALL,
// KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY), and the fixed paths below (sharedPaths).
type Baseline struct {
	// Sysctls maps a /proc/sys path ("vm/overcommit_memory") to its value before.
	Sysctls map[string]string `json:"sysctls"`
	// IPTablesChains maps "<binary> <table>" to the KUBE-* chains that existed before.
	IPTablesChains map[string][]string `json:"iptablesChains"`
	// Existed lists which of sharedPaths existed before.
	Existed map[string]bool `json:"existed"`
}

// kubeletSysctls are the sysctls the kubelet sets at start (protectKernelDefaults: false).
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// varLogContainers holds the kubelet's links to container logs (a fixed path).
const varLogContainers = "/var/log/containers"

// sharedPaths are the fixed host paths the kubelet and containerd create whatever their
// configuration says, deepest first: the kubelet's device plugin socket and checkpoint,
// libcni's result cache, the CRI plugin's network namespace directory, containerd 1.6's shim
// sockets, the kubelet's log links. Down removes those that did not exist before (a directory
// only when empty: another cluster may be using it).
var sharedPaths = []string{
	"/var/lib/kubelet/device-plugins/kubelet.sock",
	"/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint",
	"/var/lib/kubelet/device-plugins",
	"/var/lib/kubelet",
	"/var/lib/cni/results",
	"/var/lib/cni",
	"/run/netns",
	"/run/containerd/s",
	"/run/containerd",
	varLogContainers,
}

var iptablesTables = []string{"mangle", "nat", "filter"}

func recordBaseline() Baseline {
	b := Baseline{Sysctls: map[string]string{}, IPTablesChains: map[string][]string{}, Existed: map[string]bool{}}
	for _, s := range kubeletSysctls {
		if v, err := os.ReadFile(filepath.Join("/proc/sys", s)); err == nil {
			b.Sysctls[s] = strings.TrimSpace(string(v))
		}
	}
	for _, bin := range iptablesBinaries() {
		for _, table := range iptablesTables {
			if rules, err := iptablesRules(bin, table); err == nil {
				b.IPTablesChains[bin+" "+table] = kubeChains(rules)
			}
		}
	}
	for _, p := range sharedPaths {
		_, err := os.Lstat(p)
		b.Existed[p] = err == nil
	}
	return b
}

// restoreHost undoes what the kubelet and containerd changed outside the scratch directory:
// links into podLogsDir in /var/log/containers, KUBE-* iptables chains that did not exist
// before, changed sysctls, and the sharedPaths that did not exist before.
func (s *State) restoreHost() error {
	var errs []error
	if ents, err := os.ReadDir(varLogContainers); err == nil {
		for _, e := range ents {
			p := filepath.Join(varLogContainers, e.Name())
			if target, err := os.Readlink(p); err == nil && within(target, s.PodLogsDir) {
				if err := os.Remove(p); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if s.Baseline.IPTablesChains != nil {
		errs = append(errs, s.removeIPTablesChains()...)
	}
	for k, before := range s.Baseline.Sysctls {
		p := filepath.Join("/proc/sys", k)
		if now, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(now)) != before {
			if err := os.WriteFile(p, []byte(before), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restoring %s to %s: %w", k, before, err))
			}
		}
	}
	for _, p := range sharedPaths {
		if existed, known := s.Baseline.Existed[p]; known && !existed {
			_ = os.Remove(p) // a directory only when empty
		}
	}
	return errors.Join(errs...)
}

// removeIPTablesChains deletes the KUBE-* chains that appeared since the baseline, with the
// rules of other chains that jump to them.
func (s *State) removeIPTablesChains() []error {
	var errs []error
	for _, bin := range iptablesBinaries() {
		for _, table := range iptablesTables {
			before, known := s.Baseline.IPTablesChains[bin+" "+table]
			if !known {
				continue
			}
			rules, err := iptablesRules(bin, table)
			if err != nil {
				continue
			}
			var ours []string
			for _, c := range kubeChains(rules) {
				if !slices.Contains(before, c) {
					ours = append(ours, c)
				}
			}
			if len(ours) == 0 {
				continue
			}
			for _, r := range rules {
				f := strings.Fields(r)
				if len(f) < 4 || f[0] != "-A" || slices.Contains(ours, f[1]) {
					continue
				}
				if j := slices.Index(f, "-j"); j >= 0 && j+1 < len(f) && slices.Contains(ours, f[j+1]) {
					errs = append(errs, iptables(bin, append([]string{"-t", table, "-D"}, f[1:]...)...))
				}
			}
			for _, c := range ours {
				errs = append(errs, iptables(bin, "-t", table, "-F", c))
			}
			for _, c := range ours {
				errs = append(errs, iptables(bin, "-t", table, "-X", c))
			}
		}
	}
	return errs
}

func iptablesBinaries() []string {
	var out []string
	for _, b := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(b); err == nil {
			out = append(out, b)
		}
	}
	return out
}

func iptablesRules(bin, table string) ([]string, error) {
	out, err := exec.Command(bin, "-w", "5", "-t", table, "-S").Output()
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n"), nil
}

// kubeChains returns the user chains named KUBE-* in `iptables -S` output.
func kubeChains(rules []string) []string {
	var out []string
	for _, r := range rules {
		f := strings.Fields(r)
		if len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], "KUBE-") {
			out = append(out, f[1])
		}
	}
	return out
}

func iptables(bin string, args ...string) error {
	out, err := exec.Command(bin, append([]string{"-w", "5"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// isNotExist reports a missing file.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// hostDrift lists how the host still differs from the baseline where the cluster changed it:
// sysctls not restored, KUBE-* chains that were not there, shared paths that were not there
// (directories only when empty: others may hold another cluster's files), links into the
// pod logs directory.
func (s *State) hostDrift() []string {
	var out []string
	for k, before := range s.Baseline.Sysctls {
		if now, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil && strings.TrimSpace(string(now)) != before {
			out = append(out, fmt.Sprintf("sysctl %s = %s (was %s)", k, strings.TrimSpace(string(now)), before))
		}
	}
	for _, bin := range iptablesBinaries() {
		for _, table := range iptablesTables {
			before, known := s.Baseline.IPTablesChains[bin+" "+table]
			rules, err := iptablesRules(bin, table)
			if !known || err != nil {
				continue
			}
			for _, c := range kubeChains(rules) {
				if !slices.Contains(before, c) {
					out = append(out, fmt.Sprintf("%s -t %s chain %s", bin, table, c))
				}
			}
		}
	}
	for _, p := range sharedPaths {
		if existed, known := s.Baseline.Existed[p]; known && !existed {
			fi, err := os.Lstat(p)
			if err != nil {
				continue
			}
			if fi.IsDir() {
				if ents, err := os.ReadDir(p); err != nil || len(ents) > 0 {
					continue // another cluster's files
				}
			}
			out = append(out, "path "+p)
		}
	}
	if ents, err := os.ReadDir(varLogContainers); err == nil {
		for _, e := range ents {
			if target, err := os.Readlink(filepath.Join(varLogContainers, e.Name())); err == nil && within(target, s.PodLogsDir) {
				out = append(out, "link "+filepath.Join(varLogContainers, e.Name()))
			}
		}
	}
	return out
}
