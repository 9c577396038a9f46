package enginetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// Docker is a dockerd started for one test, with a containerd of its own (so that it never
// attaches to a containerd another test or the host runs at /run/containerd).
type Docker struct {
	// Dir is the scratch directory holding everything below.
	Dir string
	// DataRoot is dockerd's --data-root, ExecRoot its --exec-root.
	DataRoot, ExecRoot string
	// Socket is the API socket.
	Socket string
	// ContainerdRoot and ContainerdState are its containerd's directories.
	ContainerdRoot, ContainerdState string

	cli string
	t   testing.TB
}

// StartDocker starts containerd and dockerd (overlay2, no bridge, no iptables) in a scratch
// directory and stops both by PID, after removing every container, when the test ends.
func StartDocker(t testing.TB) *Docker {
	t.Helper()
	testenv.RequireRoot(t)
	dockerd := testenv.RequireBinary(t, "dockerd")
	containerd := testenv.RequireBinary(t, "containerd")
	testenv.RequireBinary(t, "runc")
	cli := "/usr/bin/docker" // the client packaged with this dockerd
	if _, err := os.Stat(cli); err != nil {
		cli = testenv.RequireBinary(t, "docker")
	}

	dir := scratch(t, "lkdocker")
	d := &Docker{
		Dir: dir, DataRoot: filepath.Join(dir, "data"), ExecRoot: filepath.Join(dir, "exec"),
		Socket: filepath.Join(dir, "docker.sock"), ContainerdRoot: filepath.Join(dir, "ctd-root"),
		ContainerdState: filepath.Join(dir, "ctd-state"), cli: cli, t: t,
	}
	ctdSock := filepath.Join(dir, "ctd.sock")
	ctdConfig := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = ""
[debug]
  address = ""
[metrics]
  address = ""
`, d.ContainerdRoot, d.ContainerdState, ctdSock)
	writeFile(t, filepath.Join(dir, "containerd.toml"), ctdConfig)
	// dockerd 20.10 writes a libtrust key to /etc/docker/key.json unless told otherwise.
	writeFile(t, filepath.Join(dir, "daemon.json"), fmt.Sprintf("{\"deprecated-key-path\": %q}\n", filepath.Join(dir, "key.json")))
	removeResidue(t, "/run/containerd/s", "/run/containerd", "/run/docker/plugins", "/run/docker")
	removeResidue(t, cgroupDirs("docker")...)

	startDaemon(t, filepath.Join(dir, "containerd.log"), containerd, "--config", filepath.Join(dir, "containerd.toml"))
	waitFor(t, 30*time.Second, "containerd socket", func() bool { _, err := os.Stat(ctdSock); return err == nil })

	startDaemon(t, filepath.Join(dir, "dockerd.log"), dockerd,
		"--config-file", filepath.Join(dir, "daemon.json"),
		"--containerd", ctdSock,
		"--data-root", d.DataRoot,
		"--exec-root", d.ExecRoot,
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"-H", "unix://"+d.Socket,
		"--storage-driver=overlay2",
		"--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
		"--userland-proxy=false", "--log-driver=json-file",
	)
	waitFor(t, 60*time.Second, "dockerd API", func() bool { _, err := d.Run("version", "--format", "{{.Server.Version}}"); return err == nil })
	// Removing the containers before the daemons stop leaves no mounts and no shims behind.
	t.Cleanup(func() {
		ids, _ := d.Run("ps", "-aq")
		if ids != "" {
			if _, err := d.Run(append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	})
	return d
}

// Run runs the docker client against this daemon and returns its output.
func (d *Docker) Run(args ...string) (string, error) {
	return run(context.Background(), 2*time.Minute, []string{"DOCKER_CONFIG=" + filepath.Join(d.Dir, "client")},
		d.cli, append([]string{"-H", "unix://" + d.Socket}, args...)...)
}

// MustRun is Run failing the test on error.
func (d *Docker) MustRun(args ...string) string {
	d.t.Helper()
	out, err := d.Run(args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// startDaemon starts a long-running process with its output in logPath and stops it by PID
// (SIGTERM, then SIGKILL) when the test ends; on failure the log is shown.
func startDaemon(t testing.TB, logPath, name string, args ...string) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		stopPID(cmd.Process.Pid, exited, 20*time.Second)
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log (tail):\n%s", filepath.Base(name), tail(string(b), 40))
			}
		}
	})
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
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

// waitFor polls cond every 100ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitFor polls cond every 100ms until it holds or timeout passes, failing the test then.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	waitFor(t, timeout, what, cond)
}
