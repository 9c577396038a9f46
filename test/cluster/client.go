package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	ctd "github.com/layerkeeper/layerkeeper/test/engines/containerd"
	"github.com/layerkeeper/layerkeeper/test/images"
	"github.com/layerkeeper/layerkeeper/test/s3server"
)

// RESTConfig is a client configuration for a system:masters member (the admin token),
// trusting the cluster CA.
func (c *Cluster) RESTConfig() *rest.Config {
	ca, _ := os.ReadFile(c.CAFile())
	return &rest.Config{
		Host:            c.APIServerURL(),
		BearerToken:     c.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		QPS:             50,
		Burst:           100,
	}
}

// Client returns a clientset with RESTConfig.
func (c *Cluster) Client() (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(c.RESTConfig())
}

// S3Client returns an S3 client for the cluster's S3 server with its root credentials
// (path-style, region us-east-1).
func (c *Cluster) S3Client() *s3.Client {
	return s3server.NewClient(c.S3.Endpoint, c.S3.AccessKey, c.S3.SecretKey)
}

// ImportArchive imports a docker-archive into containerd's k8s.io namespace, where the
// kubelet finds it (pods must use imagePullPolicy: Never).
func (c *Cluster) ImportArchive(ctx context.Context, archive string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return ctd.ImportArchive(ctx, c.Ctr, c.ContainerdSocket, archive)
}

// ImportImages writes each image as a docker-archive and imports it.
func (c *Cluster) ImportImages(ctx context.Context, imgs ...images.Image) error {
	dir, err := os.MkdirTemp(c.path("images"), "import")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for i, img := range imgs {
		p := filepath.Join(dir, fmt.Sprintf("%d.tar", i))
		if err := images.WriteDockerArchiveFile(p, img); err != nil {
			return err
		}
		if err := c.ImportArchive(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// Healthy returns nil when every recorded process runs, the API server is ready and the
// node is Ready.
func (c *Cluster) Healthy(ctx context.Context) error {
	var errs []error
	for _, comp := range c.Components {
		if !comp.Alive() {
			errs = append(errs, fmt.Errorf("%s (pid %d) is not running", comp.Name, comp.PID))
		}
	}
	for _, name := range []string{Etcd, Containerd, MinIO, APIServer, ControllerManager, Scheduler, Kubelet} {
		if c.component(name) == nil {
			errs = append(errs, fmt.Errorf("%s was never started", name))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ca, err := os.ReadFile(c.CAFile())
	if err != nil {
		return err
	}
	if err := httpOK(tlsClient(ca), c.APIServerURL()+"/readyz", c.AdminToken)(ctx); err != nil {
		return err
	}
	cs, err := c.Client()
	if err != nil {
		return err
	}
	return nodeReady(ctx, cs, c.NodeName)
}

// Status describes the cluster for a person: each component with its PID and whether it
// runs, the endpoints, and health.
func (c *Cluster) Status(ctx context.Context) string {
	s := fmt.Sprintf("cluster %s in %s (started %s, up in %.1fs)\n", c.ID, c.Dir, c.Started.Format(time.RFC3339), c.StartupSeconds)
	for _, comp := range c.Components {
		state := "running"
		if !comp.Alive() {
			state = "NOT RUNNING"
		}
		s += fmt.Sprintf("  %-24s pid %-8d %s\n", comp.Name, comp.PID, state)
	}
	s += fmt.Sprintf("  API server  %s\n  S3          %s\n  containerd  %s\n  kubeconfig  %s\n  env         %s\n",
		c.APIServerURL(), c.S3.Endpoint, c.ContainerdSocket, c.Kubeconfig(), c.EnvFile())
	if err := c.Healthy(ctx); err != nil {
		s += "  health: " + err.Error() + "\n"
	} else {
		s += "  health: node " + c.NodeName + " Ready\n"
	}
	return s
}

// Summary is the part of the kubelet's Summary API (/stats/summary) the tests read.
type Summary struct {
	Node struct {
		NodeName string   `json:"nodeName"`
		Fs       *FsStats `json:"fs,omitempty"`
	} `json:"node"`
	Pods []PodStats `json:"pods"`
}

// PodStats are one pod's figures in the Summary API.
type PodStats struct {
	PodRef struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		UID       string `json:"uid"`
	} `json:"podRef"`
	Containers       []ContainerStats `json:"containers"`
	EphemeralStorage *FsStats         `json:"ephemeral-storage,omitempty"`
}

// ContainerStats are one container's figures; Rootfs is its writable layer.
type ContainerStats struct {
	Name   string   `json:"name"`
	Rootfs *FsStats `json:"rootfs,omitempty"`
	Logs   *FsStats `json:"logs,omitempty"`
}

// FsStats is a filesystem figure; Time is when it was taken.
type FsStats struct {
	Time      metav1.Time `json:"time"`
	UsedBytes *uint64     `json:"usedBytes,omitempty"`
}

// KubeletURL is https://127.0.0.1:<kubelet port>. The kubelet's serving certificate is
// signed by the cluster CA; it accepts the admin token (webhook authentication and
// authorization) and no anonymous requests.
func (c *Cluster) KubeletURL() string { return fmt.Sprintf("https://127.0.0.1:%d", c.Ports.Kubelet) }

// Summary reads the kubelet's Summary API (/stats/summary) directly on 127.0.0.1 with the
// admin token. The API server's node proxy (nodes/<node>/proxy/stats/summary) refuses to
// proxy to a loopback address ("address not allowed"), and the kubelet listens on nothing
// else.
func (c *Cluster) Summary(ctx context.Context) (*Summary, error) {
	ca, err := os.ReadFile(c.CAFile())
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.KubeletURL()+"/stats/summary", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.AdminToken)
	resp, err := tlsClient(ca).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/stats/summary: %s: %s", c.KubeletURL(), resp.Status, body)
	}
	var s Summary
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// CRI connects to containerd's CRI runtime service; close the returned function when done.
func (c *Cluster) CRI() (runtimeapi.RuntimeServiceClient, func(), error) {
	return criClient(c.ContainerdSocket)
}

func criClient(socket string) (runtimeapi.RuntimeServiceClient, func(), error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return runtimeapi.NewRuntimeServiceClient(conn), func() { _ = conn.Close() }, nil
}
