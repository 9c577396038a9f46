package cluster

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

func TestKubeChains(t *testing.T) {
	rules := strings.Split(`-P INPUT ACCEPT
-N KUBE-FIREWALL
-N KUBE-KUBELET-CANARY
-N DOCKER
-A INPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -j DROP`, "\n")
	if diff := cmp.Diff([]string{"KUBE-FIREWALL", "KUBE-KUBELET-CANARY"}, kubeChains(rules)); diff != "" {
		t.Errorf("kubeChains (-want +got):\n%s", diff)
	}
}

func TestWithin(t *testing.T) {
	for _, tc := range []struct {
		p    string
		want bool
	}{
		{"/x/_output/cluster/pods/ns_pod_uid/c/0.log", true},
		{"/x/_output/cluster/pods", true},
		{"/x/_output/cluster/pods2/a", false},
		{"/var/log/pods/a", false},
		{"/x/_output/cluster/pods/../etc", false},
	} {
		if got := within(tc.p, "/x/_output/cluster/pods"); got != tc.want {
			t.Errorf("within(%q) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestRemoveDirRefusesSystemPaths(t *testing.T) {
	for _, d := range []string{"/", "/var", "relative/dir", ""} {
		if err := removeDir(d); err == nil {
			t.Errorf("removeDir(%q) = nil, want a refusal", d)
		}
	}
}

func TestKubeletConfig(t *testing.T) {
	s := &State{Dir: "/x/c", CgroupRoot: cgroupRootPrefix + "abcd", ContainerdSocket: "/x/c/ctd.sock", PodLogsDir: "/x/c/pods",
		Ports: Ports{Kubelet: 40001, KubeletHealthz: 40002}}
	b, err := s.kubeletConfig()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"address": "127.0.0.1", "port": float64(40001), "readOnlyPort": float64(0), "healthzBindAddress": "127.0.0.1",
		"containerRuntimeEndpoint": "unix:///x/c/ctd.sock", "cgroupRoot": cgroupRootPrefix + "abcd", "cgroupDriver": "cgroupfs",
		"imageGCHighThresholdPercent": float64(100), "podLogsDir": "/x/c/pods", "failCgroupV1": false,
	} {
		if !cmp.Equal(got[k], want) {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	// The eviction thresholds keep the kubelet's defaults.
	if _, set := got["evictionHard"]; set {
		t.Errorf("evictionHard is set: %v", got["evictionHard"])
	}
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote("it's /a b"); got != `'it'\''s /a b'` {
		t.Errorf("shellQuote = %s", got)
	}
}
