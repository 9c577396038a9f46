package kubelet

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlags(t *testing.T) {
	def := func(f Flags) Flags {
		if f.RootDir == "" {
			f.RootDir = DefaultRootDir
		}
		return f
	}
	cases := map[string]struct {
		args    []string
		want    Flags
		wantErr bool
	}{
		"no flags": {want: def(Flags{})},
		"kubeadm's systemd drop-in": {
			args: []string{"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
				"--config=/var/lib/kubelet/config.yaml", "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
				"--pod-infra-container-image=registry.k8s.io/pause:3.10"},
			want: def(Flags{Config: "/var/lib/kubelet/config.yaml"}),
		},
		"values as separate arguments, other flags stepped over": {
			args: []string{"--config", "/c.yaml", "--kubeconfig", "/k", "--root-dir", "/data/kubelet", "--v=1", "-v", "2",
				"--hostname-override", "node-a", "--config-dir", "/etc/kubernetes/kubelet.conf.d"},
			want: Flags{Config: "/c.yaml", ConfigDir: "/etc/kubernetes/kubelet.conf.d", RootDir: "/data/kubelet", HostnameOverride: "node-a"},
		},
		"a boolean flag before a known one": {
			args: []string{"--register-node", "--config=/c.yaml"},
			want: def(Flags{Config: "/c.yaml"}),
		},
		"an unknown flag never consumes a following flag (it may be a boolean)": {
			args: []string{"--cgroups-per-qos", "--config=/c.yaml", "--node-labels", "role=data", "--root-dir=/r"},
			want: Flags{Config: "/c.yaml", RootDir: "/r"},
		},
		"underscores normalized": {
			args: []string{"--config_dir=/d", "--eviction_hard=nodefs.available<5%"},
			want: def(Flags{ConfigDir: "/d", EvictionHard: map[string]string{"nodefs.available": "5%"}}),
		},
		"the last occurrence wins": {
			args: []string{"--config=/a.yaml", "--config=/b.yaml"},
			want: def(Flags{Config: "/b.yaml"}),
		},
		"eviction-hard pairs accumulate and are trimmed": {
			args: []string{"--eviction-hard=memory.available<100Mi, nodefs.available < 1Gi", "--eviction-hard", "imagefs.available<20%,"},
			want: def(Flags{EvictionHard: map[string]string{"memory.available": "100Mi", "nodefs.available": "1Gi", "imagefs.available": "20%"}}),
		},
		"an empty eviction-hard clears every threshold": {
			args: []string{"--eviction-hard="},
			want: def(Flags{EvictionHard: map[string]string{}}),
		},
		"flags end at --": {
			args: []string{"--config=/a.yaml", "--", "--config=/b.yaml"},
			want: def(Flags{Config: "/a.yaml"}),
		},
		"single-dash names are not long flags": {
			args: []string{"-config=/a.yaml"},
			want: def(Flags{}),
		},
		"malformed eviction-hard pair":   {args: []string{"--eviction-hard=nodefs.available=10%"}, wantErr: true},
		"a known flag without its value": {args: []string{"--config"}, wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseFlags(tc.args)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseFlags() error = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("ParseFlags() mismatch (-want +got):\n%s", d)
			}
		})
	}
}
