package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	ctd "github.com/layerkeeper/layerkeeper/test/engines/containerd"
	"github.com/layerkeeper/layerkeeper/test/images"
	"github.com/layerkeeper/layerkeeper/test/s3server"
)

// Environment variables naming the binaries built by hack/ (hack/test.sh and hack/cluster.sh
// set them).
const (
	// KubeBinEnv names the directory holding kube-apiserver, kube-controller-manager,
	// kube-scheduler and kubelet (hack/build-kube.sh builds them into bin/kubernetes-<version>).
	KubeBinEnv = "LAYERKEEPER_KUBE_BIN"
	// MinIOEnv names the MinIO binary (hack/build-tool.sh minio).
	MinIOEnv = s3server.BinaryEnv
)

// NodeName is the node's name. The kubelet takes an IP address given as its hostname for
// the node's InternalIP (it refuses a loopback --node-ip), so the node's address and every
// hostNetwork pod's IP is 127.0.0.1, where the API server reaches the kubelet for logs and
// exec. (Its node proxy refuses loopback addresses: see Cluster.Summary.)
const NodeName = "127.0.0.1"

// Options say where the cluster lives and what it runs.
type Options struct {
	// Dir is the scratch directory (default <module root>/_output/cluster). Unix socket paths
	// inside it must stay under 108 bytes, so it must be short (at most 70 bytes).
	Dir string
	// KubeBinDir holds kube-apiserver, kube-controller-manager, kube-scheduler and kubelet
	// (default $LAYERKEEPER_KUBE_BIN).
	KubeBinDir string
	// MinIO is the MinIO binary (default $LAYERKEEPER_MINIO).
	MinIO string
	// Images are built and imported at start, besides the pause image, which always is
	// (default: images.LogWriter, images.Quiet and images.Layerkeeper).
	Images []func(ctx context.Context) (images.Image, error)
	// Log receives progress lines (default: discarded).
	Log io.Writer
}

// UnavailableError says what this machine lacks to run the cluster; tests skip on it
// outside strict mode.
type UnavailableError struct{ Missing []string }

func (e *UnavailableError) Error() string {
	return "cannot run the cluster here, missing: " + strings.Join(e.Missing, "; ")
}

// IsUnavailable reports whether err is (or wraps) an UnavailableError.
func IsUnavailable(err error) bool {
	var u *UnavailableError
	return errors.As(err, &u)
}

// DefaultDir is <module root>/_output/cluster (or _output/cluster in the working directory
// when the module root cannot be found).
func DefaultDir() string {
	root, err := images.ModuleRoot()
	if err != nil {
		root = "."
	}
	return filepath.Join(root, "_output", "cluster")
}

func (o *Options) defaults() error {
	if o.Dir == "" {
		o.Dir = DefaultDir()
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	o.Dir = dir
	if o.KubeBinDir == "" {
		o.KubeBinDir = os.Getenv(KubeBinEnv)
	}
	if o.MinIO == "" {
		o.MinIO = os.Getenv(MinIOEnv)
	}
	if o.Images == nil {
		o.Images = []func(context.Context) (images.Image, error){images.LogWriter, images.Quiet, images.Layerkeeper}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// binaries are the executables the cluster runs, resolved.
type binaries struct {
	Etcd, APIServer, ControllerManager, Scheduler, Kubelet string
	Containerd, Ctr, MinIO                                 string
}

// check resolves every binary and checks the machine, listing everything that is missing.
func (o *Options) check() (binaries, error) {
	var b binaries
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (the kubelet and containerd mount, create cgroups and run containers)")
	}
	if len(o.Dir) > 70 {
		missing = append(missing, fmt.Sprintf("a scratch directory path of at most 70 bytes (unix sockets live in it): %s", o.Dir))
	}
	path := func(name string) string {
		p, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s on PATH (hack/install-deps.sh)", name))
		}
		return p
	}
	b.Etcd = path("etcd")
	b.Containerd = path("containerd")
	b.Ctr = path("ctr")
	path("containerd-shim-runc-v2")
	path("runc")
	path("go")
	if _, err := os.Stat(filepath.Join(ctd.CNIBinDir, "loopback")); err != nil {
		missing = append(missing, fmt.Sprintf("the CNI loopback plugin in %s (containernetworking-plugins)", ctd.CNIBinDir))
	}
	if o.KubeBinDir == "" {
		missing = append(missing, fmt.Sprintf("the Kubernetes binaries directory ($%s, built by hack/build-kube.sh)", KubeBinEnv))
	} else {
		kube := func(name string) string {
			p := filepath.Join(o.KubeBinDir, name)
			if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
				missing = append(missing, fmt.Sprintf("%s (hack/build-kube.sh %s)", p, name))
			}
			return p
		}
		b.APIServer = kube("kube-apiserver")
		b.ControllerManager = kube("kube-controller-manager")
		b.Scheduler = kube("kube-scheduler")
		b.Kubelet = kube("kubelet")
	}
	if o.MinIO == "" {
		missing = append(missing, fmt.Sprintf("the MinIO binary ($%s, built by hack/build-tool.sh minio)", MinIOEnv))
	} else if _, err := os.Stat(o.MinIO); err != nil {
		missing = append(missing, fmt.Sprintf("the MinIO binary %s", o.MinIO))
	}
	b.MinIO = o.MinIO
	if len(missing) > 0 {
		return b, &UnavailableError{Missing: missing}
	}
	return b, nil
}
