package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/layerkeeper/layerkeeper/test/host"
)

// stateFile is the file in the scratch directory recording everything Down needs.
const stateFile = "state.json"

// Component names, in start order.
const (
	Etcd              = "etcd"
	Containerd        = "containerd"
	MinIO             = "minio"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
	Kubelet           = "kubelet"
)

// Component is one process the cluster started.
type Component struct {
	Name string `json:"name"`
	host.Process
	// Log is the file holding its stdout and stderr.
	Log string `json:"log"`
}

// State is what Up records in <dir>/state.json: enough to use the cluster from another
// process (Load) and to tear it down (Down).
type State struct {
	Dir      string    `json:"dir"`
	ID       string    `json:"id"`
	NodeName string    `json:"nodeName"`
	Started  time.Time `json:"started"`
	// StartupSeconds is how long Up took, images included.
	StartupSeconds float64 `json:"startupSeconds,omitempty"`

	Ports      Ports       `json:"ports"`
	Components []Component `json:"components"`

	// AdminToken authenticates as a member of system:masters.
	AdminToken string `json:"adminToken"`
	S3         S3     `json:"s3"`

	// CgroupRoot is the kubelet's cgroupRoot: every pod cgroup (<root>/kubepods/...) lives
	// below it, in every hierarchy.
	CgroupRoot string `json:"cgroupRoot"`
	// ContainerdRoot, ContainerdState and ContainerdSocket are containerd's directories and
	// socket; discovery finds the pods' writable layers from ContainerdState.
	ContainerdRoot   string `json:"containerdRoot"`
	ContainerdState  string `json:"containerdState"`
	ContainerdSocket string `json:"containerdSocket"`
	// Ctr is the ctr binary used to import images.
	Ctr string `json:"ctr"`
	// KubeletRootDir is the kubelet's --root-dir; PodLogsDir its podLogsDir (the usual
	// /var/log/pods).
	KubeletRootDir string `json:"kubeletRootDir"`
	PodLogsDir     string `json:"podLogsDir"`
	// KubeBinDir holds the Kubernetes binaries (kubectl among them when built).
	KubeBinDir string `json:"kubeBinDir"`
	// Images are the references imported at start.
	Images []string `json:"images"`

	// Baseline is the host's state before the kubelet first ran, for Down to restore.
	Baseline Baseline `json:"baseline"`
}

// Ports are the TCP ports on 127.0.0.1 the cluster listens on.
type Ports struct {
	Etcd              int `json:"etcd"`
	EtcdPeer          int `json:"etcdPeer"`
	APIServer         int `json:"apiServer"`
	ControllerManager int `json:"controllerManager"`
	Scheduler         int `json:"scheduler"`
	Kubelet           int `json:"kubelet"`
	KubeletHealthz    int `json:"kubeletHealthz"`
	S3                int `json:"s3"`
	S3Console         int `json:"s3Console"`
}

// S3 is the S3 server's address and root credentials.
type S3 struct {
	// Endpoint is http://127.0.0.1:<port>; use path-style addressing.
	Endpoint  string `json:"endpoint"`
	Region    string `json:"region"`
	AccessKey string `json:"accessKey"`
	SecretKey string `json:"secretKey"`
}

// Paths of the files Up writes in the scratch directory.
func (s *State) path(elem ...string) string {
	return filepath.Join(append([]string{s.Dir}, elem...)...)
}

// Kubeconfig is the admin kubeconfig (token of a system:masters member, the cluster CA).
func (s *State) Kubeconfig() string { return s.path("kubeconfig") }

// EnvFile is a shell file exporting KUBECONFIG, the S3 settings, the containerd socket and
// the cluster's paths.
func (s *State) EnvFile() string { return s.path("env") }

// CAFile is the cluster CA, which signed the API server's and the kubelet's serving
// certificates.
func (s *State) CAFile() string { return s.path("pki", "ca.crt") }

// APIServerURL is https://127.0.0.1:<port>.
func (s *State) APIServerURL() string { return fmt.Sprintf("https://127.0.0.1:%d", s.Ports.APIServer) }

// component returns the named component, or nil.
func (s *State) component(name string) *Component {
	for i := range s.Components {
		if s.Components[i].Name == name {
			return &s.Components[i]
		}
	}
	return nil
}

func (s *State) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path(stateFile + ".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.path(stateFile))
}

// errNoState means the directory holds no recorded cluster.
var errNoState = errors.New("no cluster recorded")

func loadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, errNoState)
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	if s.Dir != dir {
		return nil, fmt.Errorf("%s records the cluster of %s, not %s", filepath.Join(dir, stateFile), s.Dir, dir)
	}
	return &s, nil
}
