package kubelet

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPick(t *testing.T) {
	const hostNS = "pid:[4026531836]"
	kubelet := func(pid int, ns string, args ...string) Process {
		return Process{PID: pid, PIDNamespace: ns, Args: append([]string{"/usr/bin/kubelet"}, args...)}
	}
	cases := map[string]struct {
		procs   []Process
		node    string
		want    int
		wantErr string
	}{
		"none":                               {wantErr: "no kubelet process"},
		"the only":                           {procs: []Process{kubelet(42, "")}, want: 42},
		"the only, in another PID namespace": {procs: []Process{kubelet(42, "pid:[1]")}, want: 42},
		"the one in the host's PID namespace, not a nested cluster's": {
			procs: []Process{kubelet(900, "pid:[4026532999]"), kubelet(42, hostNS), kubelet(901, "pid:[4026533000]")}, want: 42},
		"the one named after the node": {
			procs: []Process{kubelet(7, hostNS, "--hostname-override=other"), kubelet(8, hostNS, "--hostname-override", "node-a")},
			node:  "node-a", want: 8},
		"an empty command line never matches the node": {
			procs: []Process{{PID: 7, PIDNamespace: hostNS}, kubelet(8, hostNS, "--hostname-override=node-a")},
			node:  "node-a", want: 8},
		"two that cannot be told apart": {
			procs: []Process{kubelet(8, hostNS), kubelet(7, hostNS)}, node: "node-a",
			wantErr: `2 kubelet processes (PIDs [7 8]) and none tells it is node "node-a"'s`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := pick(tc.procs, hostNS, tc.node)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("pick() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.PID != tc.want {
				t.Errorf("pick() = PID %d, want %d", got.PID, tc.want)
			}
		})
	}
}

func TestListKubelets(t *testing.T) {
	h := newHost(t)
	h.process(1, "systemd", "/sbin/init")
	h.process(42, "kubelet", "/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml", "--v=2")
	h.process(43, "containerd", "/usr/bin/containerd")
	h.process(44, "kubelet-helper", "/usr/bin/kubelet-helper")
	h.write("proc/45/comm", "kubelet\n") // a zombie: empty command line
	h.write("proc/45/cmdline", "")
	h.write("proc/self", "not a process")
	got, _, err := listKubelets(h.proc)
	if err != nil {
		t.Fatal(err)
	}
	want := []Process{{PID: 42, Args: []string{"/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml", "--v=2"}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("listKubelets() mismatch (-want +got):\n%s", d)
	}
	if _, _, err := listKubelets(h.proc + "/missing"); err == nil {
		t.Error("listKubelets() of a missing directory: no error")
	}
}
