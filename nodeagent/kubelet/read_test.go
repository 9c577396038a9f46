package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// host is a fake node: a root directory laid out as a node's (/var/lib/kubelet, /etc/...) and
// a /proc whose processes' root is that directory.
type host struct {
	t          *testing.T
	root, proc string
}

func newHost(t *testing.T) *host {
	dir := t.TempDir()
	h := &host{t: t, root: filepath.Join(dir, "root"), proc: filepath.Join(dir, "proc")}
	for _, d := range []string{h.root, h.proc} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// write writes a file below the fake host's directory ("root/..." or "proc/...").
func (h *host) write(rel, content string) {
	h.t.Helper()
	p := filepath.Join(filepath.Dir(h.root), rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// symlink makes the host path (below root) link to target, as the host would read it.
func (h *host) symlink(target, hostPath string) {
	h.t.Helper()
	p := filepath.Join(h.root, hostPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		h.t.Fatal(err)
	}
}

// process adds a process with its command name and line, whose root is the host's root.
func (h *host) process(pid int, comm string, args ...string) {
	h.t.Helper()
	h.write(fmt.Sprintf("proc/%d/comm", pid), comm+"\n")
	h.write(fmt.Sprintf("proc/%d/cmdline", pid), strings.Join(args, "\x00")+"\x00")
	if err := os.Symlink(h.root, filepath.Join(h.proc, fmt.Sprint(pid), "root")); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) device(p string) string {
	h.t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		h.t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
}

// kubeadmConfig is the configuration file kubeadm writes (trimmed), plus eviction settings.
const kubeadmConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
kind: KubeletConfiguration
logging: {}
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
`

// TestRead reads real configuration layouts from a fake host root through a fake /proc.
func TestRead(t *testing.T) {
	kubeadm := func(h *host) {
		h.process(1, "systemd", "/sbin/init")
		h.process(4242, "kubelet", "/usr/bin/kubelet", "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
			"--kubeconfig=/etc/kubernetes/kubelet.conf", "--config=/var/lib/kubelet/config.yaml",
			"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock")
		if err := os.MkdirAll(filepath.Join(h.root, "var/lib/kubelet/pods"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string]struct {
		setup func(h *host)
		want  v1alpha1.KubeletEviction
		// wantMessage is a substring of the message.
		wantMessage string
		noDevice    bool
	}{
		"kubeadm: no evictionHard, the kubelet's defaults": {
			setup: func(h *host) { kubeadm(h); h.write("root/var/lib/kubelet/config.yaml", kubeadmConfig) },
			want: v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile, NodefsAvailable: "10%", NodefsInodesFree: "5%",
				ImagefsAvailable: "15%", ImagefsInodesFree: "5%"},
			wantMessage: "kubelet PID 4242: read --config /var/lib/kubelet/config.yaml; evictionHard unset: the kubelet's defaults",
		},
		"kubeadm with evictionHard and drop-ins in a subdirectory, through an absolute link": {
			setup: func(h *host) {
				kubeadm(h)
				h.process(4242+1, "kubelet-wrapper", "/bin/sh")
				h.write("proc/4242/cmdline", "/usr/bin/kubelet\x00--config\x00/var/lib/kubelet/config.yaml\x00--config-dir=/etc/kubernetes/kubelet.conf.d\x00")
				h.write("root/var/lib/kubelet/config.yaml", kubeadmConfig+"evictionHard:\n  memory.available: 200Mi\n  nodefs.available: 12%\n")
				h.write("root/etc/kubernetes/kubelet.conf.d/10-imagefs.conf", header+"evictionHard:\n  imagefs.available: 2Gi\n")
				h.write("root/etc/kubernetes/kubelet.conf.d/20-more/10-inodes.conf", header+"evictionHard:\n  nodefs.inodesFree: 4%\n")
				h.write("root/etc/kubernetes/kubelet.conf.d/README.md", "not a drop-in")
				// An absolute link, resolved inside the kubelet's root, never on the agent's.
				h.write("root/etc/shared/99-last.yaml", header+"evictionHard:\n  nodefs.available: 15%\n")
				h.symlink("/etc/shared/99-last.yaml", "etc/kubernetes/kubelet.conf.d/99-last.conf")
			},
			want: v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile, NodefsAvailable: "15%", NodefsInodesFree: "4%",
				ImagefsAvailable: "2Gi"},
			wantMessage: "read --config /var/lib/kubelet/config.yaml and 3 drop-ins of --config-dir /etc/kubernetes/kubelet.conf.d; " +
				"evictionHard set without mergeDefaultEvictionSettings: a signal it leaves out has no threshold; 3 drop-ins change evictionHard",
		},
		"mergeDefaultEvictionSettings, a configuration file reached through a relative link": {
			setup: func(h *host) {
				kubeadm(h)
				h.write("root/etc/kubernetes/kubelet-real.yaml", kubeadmConfig+"mergeDefaultEvictionSettings: true\nevictionHard:\n  nodefs.available: 1Gi\n")
				h.symlink("../../../etc/kubernetes/kubelet-real.yaml", "var/lib/kubelet/config.yaml")
			},
			want: v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile, NodefsAvailable: "1Gi", NodefsInodesFree: "5%",
				ImagefsAvailable: "15%", ImagefsInodesFree: "5%"},
			wantMessage: "mergeDefaultEvictionSettings",
		},
		"--eviction-hard wins": {
			setup: func(h *host) {
				kubeadm(h)
				h.write("root/var/lib/kubelet/config.yaml", kubeadmConfig)
				h.write("proc/4242/cmdline", "/usr/bin/kubelet\x00--config=/var/lib/kubelet/config.yaml\x00--eviction-hard=memory.available<100Mi,nodefs.available<7.5%\x00")
			},
			want:        v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionFlags, NodefsAvailable: "7.5%"},
			wantMessage: "--eviction-hard replaces the configuration's thresholds",
		},
		"flags only: no hard eviction thresholds": {
			setup: func(h *host) {
				kubeadm(h)
				h.write("proc/4242/cmdline", "/usr/bin/kubelet\x00--kubeconfig=/etc/kubernetes/kubelet.conf\x00")
			},
			want:        v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionFlags},
			wantMessage: "kubelet PID 4242; no --config, --config-dir or --eviction-hard",
		},
		"a --root-dir elsewhere": {
			setup: func(h *host) {
				kubeadm(h)
				h.write("root/etc/kubelet.yaml", kubeadmConfig)
				h.write("proc/4242/cmdline", "/usr/bin/kubelet\x00--config=/etc/kubelet.yaml\x00--root-dir=/data/kubelet\x00")
				if err := os.MkdirAll(filepath.Join(h.root, "data/kubelet"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			want: v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile, NodefsAvailable: "10%", NodefsInodesFree: "5%",
				ImagefsAvailable: "15%", ImagefsInodesFree: "5%"},
		},

		"its /proc root not readable: through the host root": {
			setup: func(h *host) {
				kubeadm(h)
				h.write("root/var/lib/kubelet/config.yaml", kubeadmConfig)
				if err := os.Remove(filepath.Join(h.proc, "4242", "root")); err != nil {
					t.Fatal(err)
				}
			},
			want: v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile, NodefsAvailable: "10%", NodefsInodesFree: "5%",
				ImagefsAvailable: "15%", ImagefsInodesFree: "5%"},
			wantMessage: "kubelet PID 4242 (files read through the host root ROOT: opening its root directory PROC/4242/root: no such file or directory): read --config",
		},

		// What cannot be read is reported, with the defaults.
		"no kubelet": {
			setup: func(h *host) {
				h.process(1, "systemd", "/sbin/init")
				h.process(77, "k3s-agent", "/usr/local/bin/k3s", "agent")
			},
			want:        Defaults(""),
			wantMessage: "no kubelet process in " + "PROC" + " (a kubelet built into another binary, as in k3s, is not found); the kubelet's defaults are assumed",
			noDevice:    true,
		},
		"the configuration file is missing": {
			setup:       kubeadm,
			want:        Defaults(""),
			wantMessage: "kubelet PID 4242: --config /var/lib/kubelet/config.yaml: open /var/lib/kubelet/config.yaml: no such file or directory; the kubelet's defaults are assumed",
		},
		"a YAML error": {
			setup: func(h *host) {
				kubeadm(h)
				h.write("root/var/lib/kubelet/config.yaml", kubeadmConfig+"evictionHard: [\n")
			},
			want:        Defaults(""),
			wantMessage: "--config /var/lib/kubelet/config.yaml: not YAML or JSON",
		},
		"a threshold the kubelet would refuse": {
			setup: func(h *host) {
				kubeadm(h)
				h.write("root/var/lib/kubelet/config.yaml", kubeadmConfig+"evictionHard:\n  nodefs.available: 110%\n")
			},
			want:        Defaults(""),
			wantMessage: "nodefs.available: threshold \"110%\" must be between 0% and 100%, which the kubelet would not have started with",
		},
		"a bad drop-in": {
			setup: func(h *host) {
				kubeadm(h)
				h.write("root/var/lib/kubelet/config.yaml", kubeadmConfig)
				h.write("proc/4242/cmdline", "/usr/bin/kubelet\x00--config=/var/lib/kubelet/config.yaml\x00--config-dir=/etc/kubelet.d\x00")
				h.write("root/etc/kubelet.d/10.conf", "evictionHard: {}\n")
			},
			want:        Defaults(""),
			wantMessage: "drop-in /etc/kubelet.d/10.conf: apiVersion \"\", kind \"\"",
		},
		"a relative --config": {
			setup: func(h *host) {
				kubeadm(h)
				h.write("proc/4242/cmdline", "/usr/bin/kubelet\x00--config=config.yaml\x00")
			},
			want:        Defaults(""),
			wantMessage: `path "config.yaml" is relative`,
		},
		"a link escaping the root stays inside it": {
			setup: func(h *host) {
				kubeadm(h)
				// On the agent's own filesystem this would be the test's scratch directory.
				h.write("proc/../outside.yaml", kubeadmConfig)
				h.symlink("../../../../outside.yaml", "var/lib/kubelet/config.yaml")
			},
			want:        Defaults(""),
			wantMessage: "no such file or directory",
		},
		"a FIFO is not read": {
			setup: func(h *host) {
				kubeadm(h)
				if err := syscall.Mkfifo(filepath.Join(h.root, "var/lib/kubelet/config.yaml"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want:        Defaults(""),
			wantMessage: "not a regular file",
		},
		"a huge file is not read": {
			setup: func(h *host) {
				kubeadm(h)
				h.write("root/var/lib/kubelet/config.yaml", kubeadmConfig+"# "+strings.Repeat("x", maxConfigBytes)+"\n")
			},
			want:        Defaults(""),
			wantMessage: "larger than 1048576 bytes",
		},
		"an unknown command-line syntax": {
			setup: func(h *host) {
				kubeadm(h)
				h.write("proc/4242/cmdline", "/usr/bin/kubelet\x00--eviction-hard=nodefs.available=10%\x00")
			},
			want:        Defaults(""),
			wantMessage: "kubelet PID 4242: command line: --eviction-hard: malformed pair",
			noDevice:    true, // nor its --root-dir
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHost(t)
			tc.setup(h)
			got := Read(Options{HostProc: h.proc, HostRoot: h.root, NodeName: "node-a"})
			msg := got.Eviction.Message
			got.Eviction.Message, tc.want.Message = "", ""
			if d := cmp.Diff(tc.want, got.Eviction); d != "" {
				t.Errorf("Read() thresholds mismatch (-want +got):\n%s\nmessage: %s", d, msg)
			}
			if want := strings.NewReplacer("PROC", h.proc, "ROOT", h.root).Replace(tc.wantMessage); !strings.Contains(msg, want) {
				t.Errorf("message = %q, want it to contain %q", msg, want)
			}
			wantDev := ""
			if !tc.noDevice {
				wantDev = h.device(h.root)
			}
			if got.NodefsDevice != wantDev {
				t.Errorf("nodefs device = %q, want %q", got.NodefsDevice, wantDev)
			}
		})
	}
}

// TestReadDropinOrder: drop-ins apply in the kubelet's order (filepath.WalkDir: names sorted,
// subdirectories where they sort), only ".conf" files, not through a linked directory.
func TestReadDropinOrder(t *testing.T) {
	h := newHost(t)
	h.process(1, "systemd", "/sbin/init")
	h.process(10, "kubelet", "/usr/bin/kubelet", "--config-dir=/etc/k.d")
	step := func(rel, value string) {
		h.write("root/etc/k.d/"+rel, header+"evictionHard:\n  nodefs.available: "+value+"\n")
	}
	step("10.conf", "1%")
	step("2.conf", "2%")    // "2.conf" sorts after "10.conf"
	step("30/a.conf", "3%") // the directory's files where "30" sorts
	step("30.conf", "4%")   // "30.conf" after the "30" directory
	step("40.yaml", "50%")  // not a drop-in
	step("41.conf.bak", "50%")
	h.write("root/etc/other/50.conf", header+"evictionHard:\n  nodefs.available: 50%\n")
	h.symlink("/etc/other", "etc/k.d/35-linked") // a linked directory is not walked
	got := Read(Options{HostProc: h.proc})
	if got.Eviction.NodefsAvailable != "4%" || !strings.Contains(got.Eviction.Message, "read 4 drop-ins") {
		t.Errorf("Read() = %+v, want nodefs.available 4%% from 4 drop-ins", got.Eviction)
	}
	// The order itself: the files dropins lists.
	r, err := openRoot(h.root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	files, err := r.dropins("/etc/k.d")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"/etc/k.d/10.conf", "/etc/k.d/2.conf", "/etc/k.d/30/a.conf", "/etc/k.d/30.conf"}, files); d != "" {
		t.Errorf("drop-in order mismatch (-want +got):\n%s", d)
	}
	// A --config-dir that is itself a link: the kubelet's WalkDir reads nothing from it.
	if files, err := r.dropins("/etc/k.d/35-linked"); err != nil || len(files) != 0 {
		t.Errorf("dropins(linked dir) = %v, %v; want none", files, err)
	}
	if _, err := r.dropins("/etc/missing"); err == nil {
		t.Error("dropins(missing dir): no error")
	}
}
