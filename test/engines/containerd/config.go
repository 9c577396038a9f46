package containerd

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Config is a containerd 1.6 configuration (version 2) that keeps every path of one
// containerd in a scratch directory and settles what these machines need: the overlayfs
// snapshotter, runc with cgroupfs, restrict_oom_score_adj (root lacks CAP_SYS_RESOURCE, and
// runc fails on a lower oom_score_adj otherwise), no AppArmor or SELinux, a loopback-only
// CNI network, and no TCP listener but the CRI streaming server on 127.0.0.1.
type Config struct {
	// Root and State are containerd's root and state directories.
	Root, State string
	// Socket is the gRPC (and CRI) unix socket.
	Socket string
	// OptDir is the io.containerd.internal.v1.opt plugin's directory.
	OptDir string
	// RuncRoot is runc's state directory.
	RuncRoot string
	// CNIConfDir holds the CNI network configuration (write LoopbackConflist there).
	CNIConfDir string
	// SandboxImage is the pause image; it must be imported under this name.
	SandboxImage string
}

// Namespace is the containerd namespace the CRI plugin keeps pods and images in.
const Namespace = "k8s.io"

// CNIBinDir is where Debian's containernetworking-plugins installs the CNI plugins.
const CNIBinDir = "/usr/lib/cni"

// LoopbackConflistName and LoopbackConflist are a CNI network of the loopback plugin alone:
// enough for the CRI plugin (and a kubelet) to report the network ready. Pods use the
// host's network namespace (hostNetwork: true).
const (
	LoopbackConflistName = "10-loopback.conflist"
	LoopbackConflist     = `{
  "cniVersion": "1.0.0",
  "name": "layerkeeper-loopback",
  "plugins": [{"type": "loopback"}]
}
`
)

// TOML renders the configuration file.
func (c Config) TOML() string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = %[3]q

[ttrpc]
  address = ""

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
`, c.Root, c.State, c.Socket, c.OptDir, c.SandboxImage, c.RuncRoot, CNIBinDir, c.CNIConfDir)
}

// ImportArchive imports a docker-archive into the k8s.io namespace of the containerd at
// socket with ctr (unpacked for the overlayfs snapshotter), where the CRI plugin sees it;
// nothing is ever pulled.
func ImportArchive(ctx context.Context, ctr, socket, archive string) error {
	cmd := exec.CommandContext(ctx, ctr, "--address", socket, "--namespace", Namespace,
		"images", "import", "--snapshotter", "overlayfs", archive)
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images import %s: %w\n%s", archive, err, out)
	}
	return nil
}

// RuntimeReady returns nil once the CRI runtime reports RuntimeReady (and NetworkReady too,
// with network).
func RuntimeReady(ctx context.Context, rt runtimeapi.RuntimeServiceClient, network bool) error {
	st, err := rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return err
	}
	for _, cond := range st.GetStatus().GetConditions() {
		if (cond.Type == runtimeapi.RuntimeReady || network && cond.Type == runtimeapi.NetworkReady) && !cond.Status {
			return fmt.Errorf("%s: %s %s", cond.Type, cond.Reason, cond.Message)
		}
	}
	return nil
}

// RemoveAllPods stops (waiting up to stopTimeout seconds each) and removes every container,
// then every pod sandbox, through CRI, the way the kubelet tears pods down.
func RemoveAllPods(ctx context.Context, rt runtimeapi.RuntimeServiceClient, stopTimeout int64) error {
	var errs []error
	ctrs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return err
	}
	for _, ct := range ctrs.Containers {
		// Stop anything not known to have exited: a container listed as created (or unknown)
		// may be starting still, from a request the kubelet sent just before it stopped.
		var stopErr error
		if ct.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			_, stopErr = rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ct.Id, Timeout: stopTimeout})
		}
		_, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: ct.Id})
		for try := 0; err != nil && try < 5 && ctx.Err() == nil; try++ {
			// It may have started between the stop and the removal, or its exit may not be
			// processed yet: stop it again, give containerd a moment, retry.
			_, stopErr = rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ct.Id, Timeout: stopTimeout})
			time.Sleep(200 * time.Millisecond)
			_, err = rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: ct.Id})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("removing container %s: %w", ct.Id, errors.Join(err, stopErr)))
		}
	}
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, sb := range sbs.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stopping sandbox %s: %w", sb.Id, err))
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("removing sandbox %s: %w", sb.Id, err))
		}
	}
	return errors.Join(errs...)
}
