package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	ctd "github.com/layerkeeper/layerkeeper/test/engines/containerd"
	"github.com/layerkeeper/layerkeeper/test/images"
)

// The Service network. No kube-proxy runs, so ClusterIPs route nowhere: in-cluster clients
// reach the API server at 127.0.0.1 (KUBERNETES_SERVICE_HOST/PORT set in their pod spec, see
// the env file), pods use the host network.
const (
	serviceCIDR      = "10.96.0.0/16"
	serviceClusterIP = "10.96.0.1"
)

// writeKubeconfig writes a kubeconfig for user with a bearer token, trusting the cluster CA.
func writeKubeconfig(path, server string, caPEM []byte, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["layerkeeper"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["layerkeeper"] = &clientcmdapi.Context{Cluster: "layerkeeper", AuthInfo: user}
	cfg.CurrentContext = "layerkeeper"
	return clientcmd.WriteToFile(*cfg, path)
}

// containerdConfig is the containerd configuration: everything under <dir>/containerd, the
// pause image built here as the sandbox image.
func (s *State) containerdConfig() ctd.Config {
	return ctd.Config{
		Root:         s.ContainerdRoot,
		State:        s.ContainerdState,
		Socket:       s.ContainerdSocket,
		OptDir:       s.path("containerd", "opt"),
		RuncRoot:     s.path("containerd", "runc"),
		CNIConfDir:   s.path("containerd", "cni"),
		SandboxImage: images.PauseImage,
	}
}

// kubeletConfig is the KubeletConfiguration. Everything it writes is under the scratch
// directory except what it cannot be told otherwise: /var/log/containers links, iptables
// chains and kernel sysctls (Down removes or restores them). The hard eviction thresholds
// come from a drop-in (KubeletEvictionHard), each a little off the defaults, so the eviction
// manager works as on any node and a test can tell the agent read them from this kubelet;
// image garbage collection never starts on its own (the images are imported, there is no
// registry to pull them again).
func (s *State) kubeletConfig() ([]byte, error) {
	cfg := map[string]any{
		"apiVersion": "kubelet.config.k8s.io/v1beta1",
		"kind":       "KubeletConfiguration",
		"address":    "127.0.0.1",
		"port":       s.Ports.Kubelet,
		// No read-only port.
		"readOnlyPort":       0,
		"healthzBindAddress": "127.0.0.1",
		"healthzPort":        s.Ports.KubeletHealthz,
		"tlsCertFile":        s.path("pki", "kubelet.crt"),
		"tlsPrivateKeyFile":  s.path("pki", "kubelet.key"),
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": true},
			"x509":      map[string]any{"clientCAFile": s.CAFile()},
		},
		"authorization":            map[string]any{"mode": "Webhook"},
		"containerRuntimeEndpoint": "unix://" + s.ContainerdSocket,
		"imageServiceEndpoint":     "unix://" + s.ContainerdSocket,
		"cgroupDriver":             "cgroupfs",
		"cgroupsPerQOS":            true,
		"cgroupRoot":               s.CgroupRoot,
		"enforceNodeAllocatable":   []string{},
		// The hosts are cgroup v1 (hybrid); root lacks CAP_SYS_RESOURCE, so no negative
		// oom_score_adj for the kubelet itself.
		"failCgroupV1": false,
		"failSwapOn":   false,
		"oomScoreAdj":  0,
		// Never collect the imported images on a usage threshold.
		"imageGCHighThresholdPercent": 100,
		"podLogsDir":                  s.PodLogsDir,
		"volumePluginDir":             s.path("kubelet-plugins"),
		"rotateCertificates":          false,
		"serverTLSBootstrap":          false,
		"registerNode":                true,
		"resolvConf":                  "/etc/resolv.conf",
	}
	return yaml.Marshal(cfg)
}

// KubeletEvictionHard are the hard eviction thresholds of the cluster's kubelet, set by a
// drop-in of its --config-dir as an admin would: every filesystem signal, each a little off
// the kubelet's defaults, so a test can tell they were read from this kubelet.
var KubeletEvictionHard = map[string]string{
	"nodefs.available": "9%", "nodefs.inodesFree": "4%", "imagefs.available": "14%", "imagefs.inodesFree": "4%",
	"memory.available": "100Mi",
}

// kubeletDropIn is the drop-in of the kubelet's --config-dir.
func kubeletDropIn() ([]byte, error) {
	return yaml.Marshal(map[string]any{
		"apiVersion":   "kubelet.config.k8s.io/v1beta1",
		"kind":         "KubeletConfiguration",
		"evictionHard": KubeletEvictionHard,
	})
}

// writeEnv writes the env file a shell sources to use the cluster.
func (s *State) writeEnv() error {
	vars := [][2]string{
		{"KUBECONFIG", s.Kubeconfig()},
		{"LAYERKEEPER_CLUSTER_DIR", s.Dir},
		{"LAYERKEEPER_NODE_NAME", s.NodeName},
		// In-cluster clients: no kube-proxy serves the kubernetes Service's ClusterIP, so pods
		// that talk to the API server set KUBERNETES_SERVICE_HOST/PORT to these.
		{"LAYERKEEPER_APISERVER_HOST", "127.0.0.1"},
		{"LAYERKEEPER_APISERVER_PORT", fmt.Sprint(s.Ports.APIServer)},
		{"S3_ENDPOINT", s.S3.Endpoint},
		{"AWS_ACCESS_KEY_ID", s.S3.AccessKey},
		{"AWS_SECRET_ACCESS_KEY", s.S3.SecretKey},
		{"AWS_DEFAULT_REGION", s.S3.Region},
		{"AWS_REGION", s.S3.Region},
		// ctr and crictl read these.
		{"CONTAINERD_ADDRESS", s.ContainerdSocket},
		{"CONTAINERD_NAMESPACE", ctd.Namespace},
		{"CONTAINER_RUNTIME_ENDPOINT", "unix://" + s.ContainerdSocket},
		{"LAYERKEEPER_CONTAINERD_STATE", s.ContainerdState},
		{"LAYERKEEPER_KUBELET_ROOT_DIR", s.KubeletRootDir},
		{"LAYERKEEPER_POD_LOGS_DIR", s.PodLogsDir},
	}
	var b strings.Builder
	b.WriteString("# The layerkeeper test cluster (test/cluster). Source it: . " + s.EnvFile() + "\n")
	for _, v := range vars {
		fmt.Fprintf(&b, "export %s=%s\n", v[0], shellQuote(v[1]))
	}
	fmt.Fprintf(&b, "export PATH=%s:\"$PATH\"\n", shellQuote(s.KubeBinDir))
	return os.WriteFile(s.EnvFile(), []byte(b.String()), 0o600)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeFile writes content to p, creating its directory.
func writeFile(p string, content []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, content, mode)
}
