package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/layerkeeper/layerkeeper/nodeagent/discovery"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// criLayout mounts a real overlay laid out exactly as containerd's CRI plugin lays out a
// running container, with a log tree written through the merged view, and returns the
// container ID, the state dir and the upperdir.
func criLayout(t *testing.T) (id, state, upper string) {
	t.Helper()
	testenv.RequireRoot(t)
	dir := t.TempDir()
	state = filepath.Join(dir, "run", "containerd")
	snaps := filepath.Join(dir, "var", "lib", "containerd", "io.containerd.snapshotter.v1.overlayfs", "snapshots")
	id = strings.Repeat("ab", 32)
	bundle := filepath.Join(state, "io.containerd.runtime.v2.task", "k8s.io", id)
	merged := filepath.Join(bundle, "rootfs")
	lower, work := filepath.Join(snaps, "1", "fs"), filepath.Join(snaps, "2", "work")
	upper = filepath.Join(snaps, "2", "fs")
	for _, d := range []string{filepath.Join(lower, "opt", "airflow"), upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(lower, "opt", "airflow", "airflow.cfg"), []byte("[core]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"ociVersion": "1.0.2", "annotations": map[string]string{
		"io.kubernetes.cri.container-type":    "container",
		"io.kubernetes.cri.container-name":    "scheduler",
		"io.kubernetes.cri.sandbox-name":      "airflow-scheduler-7d9f-abcde",
		"io.kubernetes.cri.sandbox-namespace": "airflow",
		"io.kubernetes.cri.sandbox-uid":       "uid-1",
		"io.kubernetes.cri.sandbox-id":        strings.Repeat("cd", 32),
	}})
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(merged, unix.MNT_DETACH) })
	logs := filepath.Join(merged, "opt", "airflow", "logs", "scheduler", "2026-11-25")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		line := bytes.Repeat([]byte("INFO - scheduler heartbeat\n"), 1000*(i+1))
		if err := os.WriteFile(filepath.Join(logs, strconv.Itoa(i)+".log"), line, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return id, state, upper
}

func duBytes(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-sB1", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestScanFindsARealCRIContainer runs `layerkeeper scan --output json` against a real overlay
// mount in containerd's CRI layout: identity from the bundle, bytes equal to du, the log
// directory as the top hot path, a requested path measured exactly.
func TestScanFindsARealCRIContainer(t *testing.T) {
	id, state, upper := criLayout(t)
	var stdout, stderr bytes.Buffer
	err := RunScan(context.Background(), []string{"--output", "json", "--runtime", "containerd",
		"--containerd-state", state, "--path", "/opt/airflow/logs"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("scan: %v\n%s", err, stderr.String())
	}
	var doc ScanJSON
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	var found *ScanContainer
	for i := range doc.Containers {
		if doc.Containers[i].ContainerID == id {
			found = &doc.Containers[i]
		}
	}
	if found == nil {
		t.Fatalf("container %s not in %s", id, stdout.String())
	}
	if found.Namespace != "airflow" || found.Pod != "airflow-scheduler-7d9f-abcde" || found.Container != "scheduler" ||
		!found.Running || found.Runtime != "containerd" || found.UpperDir != upper {
		t.Errorf("identity = %+v", *found)
	}
	if want := duBytes(t, upper); found.Bytes != want {
		t.Errorf("bytes = %d, du -sB1 says %d", found.Bytes, want)
	}
	if top, ok := topDir(found.HotPaths); !ok || top.Path != "/opt/airflow/logs/scheduler/2026-11-25" {
		t.Errorf("top hot path of %+v = %q, want /opt/airflow/logs/scheduler/2026-11-25", found.HotPaths, top.Path)
	}
	if len(found.RequestedPaths) != 1 || found.RequestedPaths[0].Path != "/opt/airflow/logs" || found.RequestedPaths[0].Files != 20 {
		t.Errorf("requested paths = %+v, want /opt/airflow/logs with 20 files", found.RequestedPaths)
	}
	if len(doc.Filesystems) == 0 || doc.Filesystems[0].CapacityBytes <= 0 {
		t.Errorf("filesystems = %+v", doc.Filesystems)
	}

	// The table names the pod and the hot path.
	stdout.Reset()
	if err := RunScan(context.Background(), []string{"--runtime", "containerd", "--containerd-state", state}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"airflow/airflow-scheduler-7d9f-abcde/scheduler", "running", "/opt/airflow/logs/scheduler/2026-11-25"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table does not show %q:\n%s", want, stdout.String())
		}
	}
}

func TestScanRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--output", "yaml"},
		{"--runtime", "rkt"},
		{"--path", "relative/path"},
		{"extra-arg"},
	} {
		var out, errOut bytes.Buffer
		err := RunScan(context.Background(), args, &out, &errOut)
		ue, ok := err.(interface{ UsageError() bool })
		if err == nil || !ok || !ue.UsageError() {
			t.Errorf("RunScan(%v) = %v, want a usage error", args, err)
		}
	}
}

func TestContainerdSocketFlag(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		socket   string
		disabled bool
	}{
		{name: "not given: the default socket and config.toml's, if present"},
		{name: "a socket that must answer", args: []string{"--containerd-socket", "/run/k3s/containerd/containerd.sock"},
			socket: "/run/k3s/containerd/containerd.sock"},
		{name: "empty disables", args: []string{"--containerd-socket="}, disabled: true},
		{name: "the last one wins", args: []string{"--containerd-socket=", "--containerd-socket=/srv/c.sock"}, socket: "/srv/c.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var scan ScanOptions
			if err := scan.flagSet().Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			var fromScan discovery.Options
			scan.ContainerdSocket.apply(&fromScan)
			var agent AgentOptions
			if err := agent.flagSet().Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			for name, got := range map[string]discovery.Options{"scan": fromScan, "agent": agent.discovery()} {
				if got.ContainerdSocket != tt.socket || got.NoContainerdSocket != tt.disabled {
					t.Errorf("%s: ContainerdSocket %q, NoContainerdSocket %v; want %q, %v",
						name, got.ContainerdSocket, got.NoContainerdSocket, tt.socket, tt.disabled)
				}
			}
		})
	}
}

// TestScanWarnsAboutAnUnreachableSocket: a containerd socket given on the command line that
// cannot be reached is a warning on stderr, and the scan still completes.
func TestScanWarnsAboutAnUnreachableSocket(t *testing.T) {
	hostRoot := t.TempDir()
	if err := os.MkdirAll(filepath.Join(hostRoot, "proc", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	root := "26 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
	if err := os.WriteFile(filepath.Join(hostRoot, "proc", "1", "mountinfo"), []byte(root), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := RunScan(context.Background(), []string{"--host-root", hostRoot, "--runtime", "containerd",
		"--containerd-socket", "/run/k3s/containerd/containerd.sock"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("scan: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "warning: discovery containerd (/run/k3s/containerd/containerd.sock)") ||
		!strings.Contains(stderr.String(), "stopped containerd containers are not reported") {
		t.Errorf("stderr does not warn about the socket:\n%s", stderr.String())
	}

	// Not given, a missing default socket is no warning.
	stderr.Reset()
	if err := RunScan(context.Background(), []string{"--host-root", hostRoot, "--runtime", "containerd"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr.String(), "warning") {
		t.Errorf("warnings without a socket given:\n%s", stderr.String())
	}
}
