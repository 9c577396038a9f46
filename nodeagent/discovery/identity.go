package discovery

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Kubernetes identity as the kubelet passes it to every runtime (CRI labels, which CRI-O and
// cri-dockerd copy into OCI annotations and Docker labels).
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
)

// containerd's CRI plugin annotations on the OCI spec of every sandbox and container
// (containerd 1.6 pkg/cri/annotations; the same names in 1.7 and 2.x).
const (
	criContainerType     = "io.kubernetes.cri.container-type"
	criSandboxName       = "io.kubernetes.cri.sandbox-name"
	criSandboxNamespace  = "io.kubernetes.cri.sandbox-namespace"
	criSandboxUID        = "io.kubernetes.cri.sandbox-uid"
	criContainerName     = "io.kubernetes.cri.container-name"
	criContainerTypeSbox = "sandbox"
)

// CRI-O's annotations (cri-o pkg/annotations). CRI-O also sets every kubelet label and
// annotation as an OCI annotation, so the io.kubernetes.pod.* labels above are there too.
const (
	crioContainerType = "io.kubernetes.cri-o.ContainerType"
	crioLabels        = "io.kubernetes.cri-o.Labels"
	crioSandboxType   = "sandbox"
)

// sandboxName is the container name the kubelet's labels give a pod sandbox (CRI-O and
// cri-dockerd carry it; containerd's annotations have none, so discovery uses it there too).
const sandboxName = "POD"

// Docker labels set by cri-dockerd (and dockershim before it) on pod sandboxes.
const (
	dockerTypeLabel   = "io.kubernetes.docker.type"
	dockerTypeSandbox = "podsandbox"
)

// ociSpec is the part of an OCI runtime config.json that discovery reads.
type ociSpec struct {
	Annotations map[string]string `json:"annotations"`
	Mounts      []struct {
		Destination string `json:"destination"`
		Source      string `json:"source"`
	} `json:"mounts"`
}

func parseOCISpec(b []byte) (ociSpec, error) {
	var s ociSpec
	err := json.Unmarshal(b, &s)
	return s, err
}

// applyContainerdAnnotations sets the Kubernetes identity from containerd CRI annotations.
// It reports false when the spec has none (a container not created through CRI).
func applyContainerdAnnotations(c *Container, a map[string]string) bool {
	t, ok := a[criContainerType]
	if !ok {
		return false
	}
	c.Sandbox = t == criContainerTypeSbox
	c.Pod = a[criSandboxName]
	c.Namespace = a[criSandboxNamespace]
	c.PodUID = a[criSandboxUID]
	c.Name = a[criContainerName]
	if c.Sandbox && c.Name == "" {
		c.Name = sandboxName
	}
	return true
}

// applyKubeLabels sets the Kubernetes identity from kubelet labels (CRI-O annotations, Docker
// labels). It reports false when there is none.
func applyKubeLabels(c *Container, l map[string]string) bool {
	pod, ok := l[labelPodName]
	if !ok {
		return false
	}
	c.Pod = pod
	c.Namespace = l[labelPodNamespace]
	c.PodUID = l[labelPodUID]
	c.Name = l[labelContainerName]
	return true
}

// crioLabelsFrom decodes CRI-O's JSON copy of the kubelet labels, if present.
func crioLabelsFrom(a map[string]string) map[string]string {
	s, ok := a[crioLabels]
	if !ok {
		return nil
	}
	var l map[string]string
	if json.Unmarshal([]byte(s), &l) != nil {
		return nil
	}
	return l
}

// parsePID reads a pid file's content (decimal, optional whitespace).
func parsePID(b []byte) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 || n > 1<<22 {
		return 0, false
	}
	return n, true
}
