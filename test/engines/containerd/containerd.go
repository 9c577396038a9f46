package containerd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/layerkeeper/layerkeeper/nodeagent/discovery/enginetest"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// Namespace is the containerd namespace the CRI plugin keeps pods in.
const Namespace = "k8s.io"

// Containerd is a containerd with its CRI plugin, started for one test.
type Containerd struct {
	// Dir is the scratch directory holding everything below; nothing of this containerd
	// lives outside it except the shim sockets (containerd 1.6 puts them in /run/containerd/s
	// whatever its state directory) and the cgroups under CgroupParent.
	Dir string
	// Root and State are containerd's root and state directories.
	Root, State string
	// Socket is the gRPC (and CRI) unix socket.
	Socket string
	// CgroupParent is the cgroup parent of every pod sandbox (cgroupfs driver), unique to
	// this harness; pod cgroups are CgroupParent/pod<uid>.
	CgroupParent string
	// PodLogDir is where pod log directories go (the kubelet's /var/log/pods).
	PodLogDir string
	// PID is the containerd process.
	PID int

	// Runtime and Images are the CRI clients.
	Runtime runtimeapi.RuntimeServiceClient
	Images  runtimeapi.ImageServiceClient

	conn   *grpc.ClientConn
	ctr    string
	exited <-chan struct{} // closed once containerd has exited and been reaped
	t      testing.TB
}

var instances atomic.Int64

// Start starts containerd (overlayfs snapshotter, runc with cgroupfs, CRI streaming server on
// 127.0.0.1 with a random port, CNI with a loopback-only network) in a scratch directory,
// imports the pause image named by its sandbox_image, and connects the CRI clients. Everything
// is torn down when the test ends; whatever could not be cleaned fails the test.
func Start(t testing.TB) *Containerd {
	t.Helper()
	testenv.RequireRoot(t)
	bin := testenv.RequireBinary(t, "containerd")
	testenv.RequireBinary(t, "containerd-shim-runc-v2")
	testenv.RequireBinary(t, "runc")
	ctr := testenv.RequireBinary(t, "ctr")
	if _, err := os.Stat(filepath.Join(cniBinDir, "loopback")); err != nil {
		testenv.Unavailable(t, "the CNI loopback plugin in %s (containernetworking-plugins)", cniBinDir)
	}

	dir, err := os.MkdirTemp("", "lkctd") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{
		Dir:          dir,
		Root:         filepath.Join(dir, "root"),
		State:        filepath.Join(dir, "state"),
		Socket:       filepath.Join(dir, "ctd.sock"),
		CgroupParent: fmt.Sprintf("/layerkeeper-test-%d-%d", os.Getpid(), instances.Add(1)),
		PodLogDir:    filepath.Join(dir, "pods"),
		ctr:          ctr,
		t:            t,
	}
	residue := freshPaths(shimSocketDir, shimSocketDir+"/s")
	t.Cleanup(func() { c.teardown(residue) })

	writeFile(t, filepath.Join(dir, "containerd.toml"), c.config())
	writeFile(t, filepath.Join(dir, "cni", "10-loopback.conflist"), loopbackConflist)
	if err := os.MkdirAll(c.PodLogDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pause := filepath.Join(dir, "pause.tar")
	if err := enginetest.WriteDockerArchiveFile(pause, enginetest.Image{
		RepoTag:    PauseImage,
		Files:      map[string]enginetest.ImageFile{"/pause": {Mode: 0o755, Content: BuildProgram(t, "pause")}},
		Entrypoint: []string{"/pause"},
	}); err != nil {
		t.Fatal(err)
	}

	c.start(bin)
	conn, err := grpc.NewClient("unix://"+c.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c.conn = conn
	c.Runtime = runtimeapi.NewRuntimeServiceClient(conn)
	c.Images = runtimeapi.NewImageServiceClient(conn)
	enginetest.WaitFor(t, 30*time.Second, "the CRI runtime service", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := c.Runtime.Status(ctx, &runtimeapi.StatusRequest{})
		if err != nil {
			return false
		}
		for _, cond := range st.GetStatus().GetConditions() {
			if cond.Type == runtimeapi.RuntimeReady && !cond.Status {
				return false
			}
		}
		return true
	})
	c.ImportImage(t, pause)
	return c
}

// Paths and names this harness uses.
const (
	// PauseImage is the sandbox image: a static binary that waits for SIGTERM.
	PauseImage = "localhost/layerkeeper-pause:test"
	cniBinDir  = "/usr/lib/cni"
	// shimSocketDir is where containerd 1.6 puts shim sockets, whatever its state directory.
	shimSocketDir = "/run/containerd"
)

const loopbackConflist = `{
  "cniVersion": "1.0.0",
  "name": "layerkeeper-loopback",
  "plugins": [{"type": "loopback"}]
}
`

// config is containerd's configuration (version 2). Every listener is a unix socket in Dir
// except the CRI streaming server, on 127.0.0.1 with a kernel-chosen port.
func (c *Containerd) config() string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = %[3]q

[debug]
  address = ""

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %[4]q
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = %[5]q
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    restrict_oom_score_adj = true
    disable_apparmor = true
    enable_selinux = false
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = %[6]q
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = %[7]q
      conf_dir = %[8]q
      max_conf_num = 1
`, c.Root, c.State, c.Socket, filepath.Join(c.Dir, "opt"), PauseImage,
		filepath.Join(c.Dir, "runc"), cniBinDir, filepath.Join(c.Dir, "cni"))
}

// start starts containerd, records its PID and waits for its socket.
func (c *Containerd) start(bin string) {
	t := c.t
	t.Helper()
	logPath := filepath.Join(c.Dir, "containerd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", filepath.Join(c.Dir, "containerd.toml"), "--log-level", "info")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a signal to the test's group does not reach it first.
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting containerd: %v", err)
	}
	c.PID = cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	c.exited = exited
	enginetest.WaitFor(t, 30*time.Second, "the containerd socket", func() bool {
		select {
		case <-exited:
			t.Fatalf("containerd exited at start:\n%s", tailFile(logPath, 30))
		default:
		}
		_, err := os.Stat(c.Socket)
		return err == nil
	})
}

// ImportImage imports a docker-archive into the k8s.io namespace with ctr (unpacked for the
// overlayfs snapshotter), where the CRI plugin sees it; nothing is ever pulled.
func (c *Containerd) ImportImage(t testing.TB, archive string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.ctr, "--address", c.Socket, "--namespace", Namespace,
		"images", "import", "--snapshotter", "overlayfs", archive)
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ctr images import %s: %v\n%s", archive, err, out)
	}
}

// Log returns the tail of containerd's log.
func (c *Containerd) Log(lines int) string {
	return tailFile(filepath.Join(c.Dir, "containerd.log"), lines)
}

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tailFile(p string, n int) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
