package containerd

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels and annotations the kubelet sets on every sandbox and container it creates
// (kubelet pkg/kubelet/kuberuntime/labels.go).
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"

	annotationContainerHash          = "io.kubernetes.container.hash"
	annotationRestartCount           = "io.kubernetes.container.restartCount"
	annotationTerminationPath        = "io.kubernetes.container.terminationMessagePath"
	annotationTerminationPolicy      = "io.kubernetes.container.terminationMessagePolicy"
	annotationTerminationGracePeriod = "io.kubernetes.pod.terminationGracePeriod"
)

// Pod is what the kubelet knows of a pod when it asks the runtime for a sandbox. Pods run
// with the host's network namespace (hostNetwork: true): the tests use no pod addresses.
type Pod struct {
	Name, Namespace, UID string
	// Labels and Annotations are the pod's own; the kubelet's are added.
	Labels, Annotations map[string]string
}

// Container is one container of a pod, as the kubelet passes it to CreateContainer.
type Container struct {
	Name string
	// Image is the reference of an imported image (pull policy Never: it must be present).
	Image         string
	Command, Args []string
	Env           map[string]string
	// Attempt is the restart count.
	Attempt uint32
}

// LogDirectory is the pod's log directory, as the kubelet names it under /var/log/pods.
func (c *Containerd) LogDirectory(p Pod) string {
	return filepath.Join(c.PodLogDir, p.Namespace+"_"+p.Name+"_"+p.UID)
}

// SandboxConfig is the PodSandboxConfig the kubelet would send for p, with the host network
// and this harness's cgroup parent.
func (c *Containerd) SandboxConfig(p Pod) *runtimeapi.PodSandboxConfig {
	labels := maps.Clone(p.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelPodName], labels[LabelPodNamespace], labels[LabelPodUID] = p.Name, p.Namespace, p.UID
	annotations := map[string]string{"kubernetes.io/config.source": "api", "kubernetes.io/config.seen": "2026-01-01T00:00:00Z"}
	maps.Copy(annotations, p.Annotations)
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: p.Name, Namespace: p.Namespace, Uid: p.UID, Attempt: 0},
		// No Hostname: the kubelet sets none for a hostNetwork pod, which shares the host's
		// UTS namespace too.
		LogDirectory: c.LogDirectory(p),
		Labels:       labels,
		Annotations:  annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: c.CgroupParent + "/pod" + p.UID,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: namespaces(),
			},
		},
	}
}

func namespaces() *runtimeapi.NamespaceOption {
	return &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_NODE,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
}

// RunPodSandbox creates the pod's log directory and runs its sandbox, as the kubelet does.
func (c *Containerd) RunPodSandbox(ctx context.Context, p Pod) (string, error) {
	if err := os.MkdirAll(c.LogDirectory(p), 0o755); err != nil {
		return "", err
	}
	resp, err := c.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: c.SandboxConfig(p)})
	if err != nil {
		return "", fmt.Errorf("RunPodSandbox %s/%s: %w", p.Namespace, p.Name, err)
	}
	return resp.PodSandboxId, nil
}

// ImageID returns the ID of an image already present, or an error: imagePullPolicy Never,
// the kubelet's check before creating a container (images are imported, never pulled).
func (c *Containerd) ImageID(ctx context.Context, ref string) (string, error) {
	resp, err := c.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		return "", fmt.Errorf("ImageStatus %s: %w", ref, err)
	}
	if resp.Image == nil {
		return "", fmt.Errorf("image %s is not present and the pull policy is Never", ref)
	}
	return resp.Image.Id, nil
}

// ContainerConfig is the ContainerConfig the kubelet would send for ct in pod p, imageID
// being what ImageID returned.
func (c *Containerd) ContainerConfig(p Pod, ct Container, imageID string) *runtimeapi.ContainerConfig {
	var envs []*runtimeapi.KeyValue
	for _, k := range slices.Sorted(maps.Keys(ct.Env)) {
		envs = append(envs, &runtimeapi.KeyValue{Key: k, Value: []byte(ct.Env[k])})
	}
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: ct.Name, Attempt: ct.Attempt},
		Image:    &runtimeapi.ImageSpec{Image: imageID, UserSpecifiedImage: ct.Image},
		Command:  ct.Command,
		Args:     ct.Args,
		Envs:     envs,
		Labels: map[string]string{
			LabelContainerName: ct.Name, LabelPodName: p.Name, LabelPodNamespace: p.Namespace, LabelPodUID: p.UID,
		},
		Annotations: map[string]string{
			annotationContainerHash:          "5f3c2a1b",
			annotationRestartCount:           strconv.Itoa(int(ct.Attempt)),
			annotationTerminationPath:        "/dev/termination-log",
			annotationTerminationPolicy:      "File",
			annotationTerminationGracePeriod: "30",
		},
		LogPath: filepath.Join(ct.Name, strconv.Itoa(int(ct.Attempt))+".log"),
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{CpuShares: 2, OomScoreAdj: 1000},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: namespaces(),
			},
		},
	}
}

// CreateContainer creates ct in the sandbox podID of p (checking first that its image is
// present) and returns the container ID.
func (c *Containerd) CreateContainer(ctx context.Context, podID string, p Pod, ct Container) (string, error) {
	imageID, err := c.ImageID(ctx, ct.Image)
	if err != nil {
		return "", err
	}
	resp, err := c.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId:  podID,
		Config:        c.ContainerConfig(p, ct, imageID),
		SandboxConfig: c.SandboxConfig(p),
	})
	if err != nil {
		return "", fmt.Errorf("CreateContainer %s in %s/%s: %w", ct.Name, p.Namespace, p.Name, err)
	}
	return resp.ContainerId, nil
}

// StartContainer starts a created container.
func (c *Containerd) StartContainer(ctx context.Context, id string) error {
	_, err := c.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
	return err
}

// StopContainer stops a container, killing it after timeout seconds.
func (c *Containerd) StopContainer(ctx context.Context, id string, timeout int64) error {
	_, err := c.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: timeout})
	return err
}

// RemoveContainer removes a container (its writable layer goes with it).
func (c *Containerd) RemoveContainer(ctx context.Context, id string) error {
	_, err := c.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
	return err
}

// ContainerStatus returns a container's status.
func (c *Containerd) ContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	resp, err := c.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return nil, err
	}
	return resp.Status, nil
}

// ContainerStats returns a container's stats, among them the writable layer's used bytes.
func (c *Containerd) ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error) {
	resp, err := c.Runtime.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		return nil, err
	}
	return resp.Stats, nil
}

// ContainerLog returns the container's CRI log file (stdout and stderr in the CRI log
// format), or "" when there is none yet.
func (c *Containerd) ContainerLog(ctx context.Context, id string) (string, error) {
	st, err := c.ContainerStatus(ctx, id)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(st.LogPath)
	if os.IsNotExist(err) {
		return "", nil
	}
	return string(b), err
}
