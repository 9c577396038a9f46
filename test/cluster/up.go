package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	ctd "github.com/layerkeeper/layerkeeper/test/engines/containerd"
	"github.com/layerkeeper/layerkeeper/test/host"
	"github.com/layerkeeper/layerkeeper/test/images"
	"github.com/layerkeeper/layerkeeper/test/s3server"
)

// Cluster is a running cluster: its recorded State and the means to use it.
type Cluster struct {
	State
	// Reused is set when Up found the cluster already running and healthy.
	Reused bool

	log    io.Writer
	exited map[string]chan struct{}
}

// Up starts the cluster in o.Dir and waits until its node is Ready and the default service
// account exists, or returns the cluster already running there if it is healthy (Reused).
// A cluster recorded there that is not healthy, or the remains of one, are torn down first.
// If start-up fails, everything started is torn down and the components' logs are kept in
// <dir>.failed-logs (unless ctx was cancelled). An *UnavailableError says what the machine
// lacks.
func Up(ctx context.Context, o Options) (*Cluster, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	bins, err := o.check()
	if err != nil {
		return nil, err
	}
	if c, err := Load(o.Dir); err == nil {
		c.log = o.Log
		herr := c.Healthy(ctx)
		if herr == nil {
			c.Reused = true
			c.logf("already up in %s (node %s Ready); refreshing the images", c.Dir, c.NodeName)
			if err := c.RefreshImages(ctx, o.Images...); err != nil {
				return nil, err
			}
			return c, nil
		}
		c.logf("the cluster recorded in %s is not healthy (%v); tearing it down", c.Dir, herr)
	}
	if _, err := os.Lstat(o.Dir); err == nil {
		if err := Down(ctx, o.Dir, o.Log); err != nil {
			return nil, fmt.Errorf("tearing down what is left in %s: %w", o.Dir, err)
		}
	}
	c := &Cluster{log: o.Log, exited: map[string]chan struct{}{}}
	if err := c.up(ctx, o, bins); err != nil {
		c.logf("start-up failed: %v", err)
		failed := o.Dir + ".failed-logs"
		_ = os.RemoveAll(failed)
		if ctx.Err() == nil && os.Rename(filepath.Join(o.Dir, "logs"), failed) == nil {
			c.logf("component logs kept in %s", failed)
			for i := range c.Components {
				c.Components[i].Log = filepath.Join(failed, filepath.Base(c.Components[i].Log))
			}
		}
		if derr := c.Down(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, fmt.Errorf("tearing down after the failure: %w", derr))
		}
		return nil, err
	}
	return c, nil
}

// Load returns the cluster recorded in dir (by Up, possibly in another process).
func Load(dir string) (*Cluster, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s, err := loadState(dir)
	if err != nil {
		return nil, err
	}
	return &Cluster{State: *s, log: io.Discard, exited: map[string]chan struct{}{}}, nil
}

// SetLog sends the cluster's progress lines to w.
func (c *Cluster) SetLog(w io.Writer) { c.log = w }

func (c *Cluster) up(ctx context.Context, o Options, bins binaries) error {
	t0 := time.Now()
	dir := o.Dir
	c.Dir, c.ID, c.NodeName, c.Started = dir, randomHex(4), NodeName, t0
	c.CgroupRoot = "/layerkeeper-cluster-" + c.ID
	c.ContainerdRoot = filepath.Join(dir, "containerd", "root")
	c.ContainerdState = filepath.Join(dir, "containerd", "state")
	c.ContainerdSocket = filepath.Join(dir, "ctd.sock")
	c.Ctr = bins.Ctr
	c.KubeletRootDir = filepath.Join(dir, "kubelet")
	c.PodLogsDir = filepath.Join(dir, "pods")
	c.KubeBinDir = o.KubeBinDir
	for _, d := range []string{"logs", "etcd", "minio/data", "images", "kubeconfigs", "containerd/cni", "kubelet", "pods", "controller-manager", "scheduler", "pki"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	ports, err := freePorts(9)
	if err != nil {
		return err
	}
	c.Ports = Ports{Etcd: ports[0], EtcdPeer: ports[1], APIServer: ports[2], ControllerManager: ports[3],
		Scheduler: ports[4], Kubelet: ports[5], KubeletHealthz: ports[6], S3: ports[7], S3Console: ports[8]}
	c.S3 = S3{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", c.Ports.S3), Region: s3server.Region,
		AccessKey: "layerkeeper-" + randomHex(4), SecretKey: randomHex(16)}
	c.Baseline = recordBaseline()
	if err := c.save(); err != nil { // from here on, Down can clean up whatever happens
		return err
	}

	tok, err := writePKI(dir)
	if err != nil {
		return err
	}
	c.AdminToken = tok.Admin
	caPEM, err := os.ReadFile(c.CAFile())
	if err != nil {
		return err
	}
	server := c.APIServerURL()
	kubeconfigs := map[string][2]string{
		c.Kubeconfig(): {adminUser, tok.Admin},
		c.path("kubeconfigs", "kubelet.kubeconfig"):            {kubeletUser, tok.Kubelet},
		c.path("kubeconfigs", "controller-manager.kubeconfig"): {controllerManagerUser, tok.ControllerManager},
		c.path("kubeconfigs", "scheduler.kubeconfig"):          {schedulerUser, tok.Scheduler},
	}
	for p, u := range kubeconfigs {
		if err := writeKubeconfig(p, server, caPEM, u[0], u[1]); err != nil {
			return err
		}
	}
	if err := writeFile(c.path("containerd", "config.toml"), []byte(c.containerdConfig().TOML()), 0o644); err != nil {
		return err
	}
	if err := writeFile(c.path("containerd", "cni", ctd.LoopbackConflistName), []byte(ctd.LoopbackConflist), 0o644); err != nil {
		return err
	}
	kcfg, err := c.kubeletConfig()
	if err != nil {
		return err
	}
	if err := writeFile(c.path("kubelet-config.yaml"), kcfg, 0o644); err != nil {
		return err
	}
	dropIn, err := kubeletDropIn()
	if err != nil {
		return err
	}
	if err := writeFile(c.path("kubelet-config.d", "50-eviction.conf"), dropIn, 0o644); err != nil {
		return err
	}

	// The images build while the daemons start.
	var (
		imgWG       sync.WaitGroup
		imgArchives []string
		imgRefs     []string
		imgErr      error
		imgDone     time.Duration
	)
	imgWG.Add(1)
	go func() {
		defer imgWG.Done()
		imgArchives, imgRefs, imgErr = writeArchives(ctx, c.path("images"), append([]func(context.Context) (images.Image, error){images.Pause}, o.Images...))
		imgDone = time.Since(t0)
	}()
	defer imgWG.Wait()

	pki := func(f string) string { return c.path("pki", f) }
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", c.Ports.Etcd)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", c.Ports.EtcdPeer)
	if err := c.start(Etcd, exec.Command(bins.Etcd, "--name", "default", "--data-dir", c.path("etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL)); err != nil {
		return err
	}
	if err := c.start(Containerd, exec.Command(bins.Containerd, "--config", c.path("containerd", "config.toml"), "--log-level", "info")); err != nil {
		return err
	}
	minio := s3server.Command(bins.MinIO, c.path("minio", "data"), fmt.Sprintf("127.0.0.1:%d", c.Ports.S3),
		fmt.Sprintf("127.0.0.1:%d", c.Ports.S3Console), c.S3.AccessKey, c.S3.SecretKey)
	if err := c.start(MinIO, minio); err != nil {
		return err
	}
	if err := c.waitFor(ctx, Etcd, "health", 60*time.Second, httpOK(nil, etcdURL+"/health", "")); err != nil {
		return err
	}
	if err := c.start(APIServer, exec.Command(bins.APIServer,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.Ports.APIServer),
		// A loopback advertise address is refused unless nothing reconciles the endpoints
		// of the kubernetes Service.
		"--endpoint-reconciler-type", "none",
		"--cert-dir", c.path("pki", "apiserver-generated"),
		"--tls-cert-file", pki("apiserver.crt"), "--tls-private-key-file", pki("apiserver.key"),
		"--client-ca-file", pki("ca.crt"),
		"--token-auth-file", pki("tokens.csv"),
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--service-account-key-file", pki("sa.pub"), "--service-account-signing-key-file", pki("sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range", serviceCIDR,
		"--kubelet-client-certificate", pki("apiserver-kubelet-client.crt"), "--kubelet-client-key", pki("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority", pki("ca.crt"),
		"--kubelet-preferred-address-types", "InternalIP,Hostname",
		"--allow-privileged=true",
		"--profiling=false",
	)); err != nil {
		return err
	}
	if err := c.waitFor(ctx, APIServer, "readyz", 180*time.Second, httpOK(tlsClient(caPEM), server+"/readyz", c.AdminToken)); err != nil {
		return err
	}
	controlPlane := time.Since(t0)

	kcm := c.path("kubeconfigs", "controller-manager.kubeconfig")
	if err := c.start(ControllerManager, exec.Command(bins.ControllerManager,
		"--kubeconfig", kcm,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.Ports.ControllerManager),
		"--cert-dir", c.path("controller-manager"),
		"--leader-elect=false", "--controllers=*", "--use-service-account-credentials=true",
		"--service-account-private-key-file", pki("sa.key"), "--root-ca-file", pki("ca.crt"),
		"--cluster-signing-cert-file", pki("ca.crt"), "--cluster-signing-key-file", pki("ca.key"),
		"--service-cluster-ip-range", serviceCIDR,
		"--profiling=false",
	)); err != nil {
		return err
	}
	sched := c.path("kubeconfigs", "scheduler.kubeconfig")
	if err := c.start(Scheduler, exec.Command(bins.Scheduler,
		"--kubeconfig", sched,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.Ports.Scheduler),
		"--cert-dir", c.path("scheduler"),
		"--leader-elect=false",
		"--profiling=false",
	)); err != nil {
		return err
	}

	// The kubelet refuses a cgroupRoot that does not exist in every hierarchy.
	if err := host.CreateCgroup(c.CgroupRoot); err != nil {
		return fmt.Errorf("creating the cgroup root %s: %w", c.CgroupRoot, err)
	}
	rt, closeCRI, err := criClient(c.ContainerdSocket)
	if err != nil {
		return err
	}
	defer closeCRI()
	if err := c.waitFor(ctx, Containerd, "the CRI runtime and network ready", 60*time.Second, func(ctx context.Context) error {
		return ctd.RuntimeReady(ctx, rt, true)
	}); err != nil {
		return err
	}
	imgWG.Wait()
	if imgErr != nil {
		return fmt.Errorf("building the images: %w", imgErr)
	}
	for _, a := range imgArchives {
		if err := c.ImportArchive(ctx, a); err != nil {
			return err
		}
	}
	c.Images = imgRefs
	imported := time.Since(t0)

	if err := c.start(Kubelet, exec.Command(bins.Kubelet,
		"--config", c.path("kubelet-config.yaml"),
		"--config-dir", c.path("kubelet-config.d"),
		"--kubeconfig", c.path("kubeconfigs", "kubelet.kubeconfig"),
		"--root-dir", c.KubeletRootDir,
		"--cert-dir", c.path("pki", "kubelet-generated"),
		"--hostname-override", c.NodeName,
		"--v=1",
	)); err != nil {
		return err
	}
	if err := c.waitFor(ctx, MinIO, "ready", 60*time.Second, httpOK(nil, c.S3.Endpoint+"/minio/health/ready", "")); err != nil {
		return err
	}
	cs, err := c.Client()
	if err != nil {
		return err
	}
	if err := c.waitFor(ctx, Kubelet, "node "+c.NodeName+" Ready", 180*time.Second, func(ctx context.Context) error {
		return nodeReady(ctx, cs, c.NodeName)
	}); err != nil {
		return err
	}
	nodeReadyAt := time.Since(t0)
	insecure := tlsClient(nil)
	for name, port := range map[string]int{ControllerManager: c.Ports.ControllerManager, Scheduler: c.Ports.Scheduler} {
		if err := c.waitFor(ctx, name, "healthz", 60*time.Second, httpOK(insecure, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), "")); err != nil {
			return err
		}
	}
	// Pods can only be created once the service account controller has made "default".
	if err := c.waitFor(ctx, ControllerManager, "the default service account", 60*time.Second, func(ctx context.Context) error {
		_, err := cs.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return err
	}

	if err := c.writeEnv(); err != nil {
		return err
	}
	c.StartupSeconds = time.Since(t0).Seconds()
	if err := c.save(); err != nil {
		return err
	}
	c.logf("cluster up in %.1fs: API server ready at %.1fs, images built (%.1fs) and imported at %.1fs, node %s Ready at %.1fs",
		c.StartupSeconds, controlPlane.Seconds(), imgDone.Seconds(), imported.Seconds(), c.NodeName, nodeReadyAt.Seconds())
	return nil
}

// nodeReady returns nil once the node's Ready condition is True.
func nodeReady(ctx context.Context, cs kubernetes.Interface, name string) error {
	n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("node %s not registered yet", name)
	}
	if err != nil {
		return err
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			if cond.Status == corev1.ConditionTrue {
				return nil
			}
			return fmt.Errorf("node %s Ready=%s: %s %s", name, cond.Status, cond.Reason, cond.Message)
		}
	}
	return fmt.Errorf("node %s has no Ready condition yet", name)
}

// writeArchives builds each image and writes it as a docker-archive in dir, returning the
// archives and the image references.
// RefreshImages builds the images from this checkout again and imports them, replacing the
// ones a running cluster was started with (pods started from now on run the new code; the
// running ones keep theirs).
func (c *Cluster) RefreshImages(ctx context.Context, imgs ...func(context.Context) (images.Image, error)) error {
	if err := os.MkdirAll(c.path("images"), 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(c.path("images"), "refresh")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	archives, _, err := writeArchives(ctx, dir, imgs)
	if err != nil {
		return fmt.Errorf("building the images: %w", err)
	}
	for _, a := range archives {
		if err := c.ImportArchive(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

func writeArchives(ctx context.Context, dir string, fs []func(context.Context) (images.Image, error)) ([]string, []string, error) {
	var archives, refs []string
	for _, f := range fs {
		img, err := f(ctx)
		if err != nil {
			return nil, nil, err
		}
		p := filepath.Join(dir, fmt.Sprintf("%02d.tar", len(archives)))
		if err := images.WriteDockerArchiveFile(p, img); err != nil {
			return nil, nil, err
		}
		archives, refs = append(archives, p), append(refs, img.RepoTag)
	}
	return archives, refs, nil
}
