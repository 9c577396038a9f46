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
	"github.com/layerkeeper/layerkeeper/test/host"
	"github.com/layerkeeper/layerkeeper/test/images"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

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
	if _, err := os.Stat(filepath.Join(CNIBinDir, "loopback")); err != nil {
		testenv.Unavailable(t, "the CNI loopback plugin in %s (containernetworking-plugins)", CNIBinDir)
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
	residue := freshPaths(filepath.Dir(host.ShimSocketDir), host.ShimSocketDir)
	t.Cleanup(func() { c.teardown(residue) })

	writeFile(t, filepath.Join(dir, "containerd.toml"), c.config().TOML())
	writeFile(t, filepath.Join(dir, "cni", LoopbackConflistName), LoopbackConflist)
	if err := os.MkdirAll(c.PodLogDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pause, err := images.Pause(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pauseArchive := filepath.Join(dir, "pause.tar")
	if err := images.WriteDockerArchiveFile(pauseArchive, pause); err != nil {
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
		return RuntimeReady(ctx, c.Runtime, false) == nil
	})
	c.ImportImage(t, pauseArchive)
	return c
}

// PauseImage is the sandbox image (sandbox_image), imported at start.
const PauseImage = images.PauseImage

// config is this harness's containerd configuration: every path in Dir, the CRI streaming
// server on 127.0.0.1 with a kernel-chosen port.
func (c *Containerd) config() Config {
	return Config{
		Root:         c.Root,
		State:        c.State,
		Socket:       c.Socket,
		OptDir:       filepath.Join(c.Dir, "opt"),
		RuncRoot:     filepath.Join(c.Dir, "runc"),
		CNIConfDir:   filepath.Join(c.Dir, "cni"),
		SandboxImage: PauseImage,
	}
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

// ImportImage imports a docker-archive into the k8s.io namespace (see ImportArchive).
func (c *Containerd) ImportImage(t testing.TB, archive string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := ImportArchive(ctx, c.ctr, c.Socket, archive); err != nil {
		t.Fatal(err)
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
