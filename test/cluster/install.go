package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/layerkeeper/layerkeeper/test/images"
)

// HelmEnv names the helm binary (hack/build-tool.sh helm builds it).
const HelmEnv = "LAYERKEEPER_HELM"

// InstallNamespace and InstallRelease are where InstallLayerkeeper installs the chart.
const (
	InstallNamespace = "layerkeeper-system"
	InstallRelease   = "layerkeeper"
)

// InstallOptions tune InstallLayerkeeper.
type InstallOptions struct {
	// Helm is the helm binary (default $LAYERKEEPER_HELM).
	Helm string
	// AgentInterval is the agent's --interval (default 3s, so tests see figures quickly).
	AgentInterval time.Duration
	// SecretNamespaces are the namespaces whose credentials Secrets the agent may read.
	SecretNamespaces []string
}

// InstallLayerkeeper installs (or upgrades) the chart from charts/layerkeeper exactly as an
// admin would with helm, with the values this cluster needs: the locally imported image
// (never pulled), one controller replica, and, as the cluster has no pod network and no
// kube-proxy, both pods on the host network with free host ports and the API server's
// address in KUBERNETES_SERVICE_HOST/PORT. It waits until the controller and the agent are
// Ready.
func (c *Cluster) InstallLayerkeeper(ctx context.Context, o InstallOptions) error {
	if o.Helm == "" {
		o.Helm = os.Getenv(HelmEnv)
	}
	if o.Helm == "" {
		return &UnavailableError{Missing: []string{"helm ($" + HelmEnv + ")"}}
	}
	if o.AgentInterval <= 0 {
		o.AgentInterval = 3 * time.Second
	}
	root, err := images.ModuleRoot()
	if err != nil {
		return err
	}
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	env := []map[string]string{
		{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
		{"name": "KUBERNETES_SERVICE_PORT", "value": strconv.Itoa(c.Ports.APIServer)},
	}
	values := map[string]any{
		"image": map[string]any{"repository": "layerkeeper", "tag": "dev", "pullPolicy": "Never"},
		"controller": map[string]any{
			"replicas": 1, "hostNetwork": true, "bindHost": "127.0.0.1", "extraEnv": env, "metricsPort": ports[0], "probesPort": ports[1],
		},
		"agent": map[string]any{
			"hostNetwork": true, "bindHost": "127.0.0.1", "extraEnv": env, "metricsPort": ports[2], "probesPort": ports[3],
			"extraArgs": []string{"--interval=" + o.AgentInterval.String(), "--containerd-root=" + c.ContainerdRoot},
			// The cluster's containerd listens in its scratch directory, not at the default
			// path: the agent finds stopped containers through it.
			"containerdSocket": c.ContainerdSocket,
			// The test machine's / is a private mount, which HostToContainer refuses.
			"hostRootMountPropagation": "None",
		},
		"s3": map[string]any{"credentialsSecretNamespaces": o.SecretNamespaces},
	}
	b, err := yaml.Marshal(values)
	if err != nil {
		return err
	}
	vf := c.path("layerkeeper-values.yaml")
	if err := os.WriteFile(vf, b, 0o600); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, o.Helm, "upgrade", "--install", InstallRelease, filepath.Join(root, "charts", "layerkeeper"),
		"--namespace", InstallNamespace, "--create-namespace", "--values", vf, "--wait", "--timeout", "3m")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig(), "HELM_CACHE_HOME="+c.path("helm", "cache"),
		"HELM_CONFIG_HOME="+c.path("helm", "config"), "HELM_DATA_HOME="+c.path("helm", "data"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("helm upgrade --install: %w\n%s", err, out.String())
	}
	return nil
}

// UninstallLayerkeeper removes the release (the CRDs stay: crds.keep).
func (c *Cluster) UninstallLayerkeeper(ctx context.Context, helm string) error {
	if helm == "" {
		helm = os.Getenv(HelmEnv)
	}
	cmd := exec.CommandContext(ctx, helm, "uninstall", InstallRelease, "--namespace", InstallNamespace, "--wait", "--ignore-not-found")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig(), "HELM_CACHE_HOME="+c.path("helm", "cache"),
		"HELM_CONFIG_HOME="+c.path("helm", "config"), "HELM_DATA_HOME="+c.path("helm", "data"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("helm uninstall: %w\n%s", err, out)
	}
	return nil
}
