package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// containerdReadOnlyMethods are the only calls the client makes; its interceptors refuse any
// other method, so no code path can change containerd's state.
var containerdReadOnlyMethods = []string{
	"/containerd.services.namespaces.v1.Namespaces/List",
	"/containerd.services.containers.v1.Containers/ListStream",
	"/containerd.services.containers.v1.Containers/List",
	"/containerd.services.tasks.v1.Tasks/List",
	"/containerd.services.snapshots.v1.Snapshots/Mounts",
}

// errNotReadOnly is returned for a call outside containerdReadOnlyMethods.
var errNotReadOnly = errors.New("not a read-only containerd call")

const (
	// containerdNamespaceHeader is the gRPC metadata key that selects a containerd namespace.
	containerdNamespaceHeader = "containerd-namespace"
	// containerdCallTimeout bounds one call; containerdSocketTimeout all calls to one socket.
	containerdCallTimeout   = 5 * time.Second
	containerdSocketTimeout = 20 * time.Second
	// maxContainerdMessage caps one response message (a container record with its OCI spec).
	maxContainerdMessage = 16 << 20
	// maxContainerdRecords caps the container records read from one namespace.
	maxContainerdRecords = 100000
)

// containerdAPI is a read-only client of one containerd's gRPC socket.
type containerdAPI struct {
	conn       *grpc.ClientConn
	namespaces namespacesapi.NamespacesClient
	containers containersapi.ContainersClient
	tasks      tasksapi.TasksClient
	snapshots  snapshotsapi.SnapshotsClient
}

// dialContainerd returns a client of the unix socket at path (a path of this process). It
// connects on the first call.
func dialContainerd(path string) (*containerdAPI, error) {
	conn, err := grpc.NewClient("passthrough:///containerd",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxContainerdMessage)),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if !slices.Contains(containerdReadOnlyMethods, method) {
				return fmt.Errorf("%s: %w", method, errNotReadOnly)
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			if !slices.Contains(containerdReadOnlyMethods, method) {
				return nil, fmt.Errorf("%s: %w", method, errNotReadOnly)
			}
			return streamer(ctx, desc, cc, method, opts...)
		}),
	)
	if err != nil {
		return nil, err
	}
	return &containerdAPI{
		conn:       conn,
		namespaces: namespacesapi.NewNamespacesClient(conn),
		containers: containersapi.NewContainersClient(conn),
		tasks:      tasksapi.NewTasksClient(conn),
		snapshots:  snapshotsapi.NewSnapshotsClient(conn),
	}, nil
}

func (a *containerdAPI) Close() error { return a.conn.Close() }

// call returns the context of one call in containerd namespace ns ("" for none).
func call(ctx context.Context, ns string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, containerdCallTimeout)
	if ns != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, containerdNamespaceHeader, ns)
	}
	return ctx, cancel
}

// listNamespaces returns the names of containerd's namespaces.
func (a *containerdAPI) listNamespaces(ctx context.Context) ([]string, error) {
	ctx, cancel := call(ctx, "")
	defer cancel()
	resp, err := a.namespaces.List(ctx, &namespacesapi.ListNamespacesRequest{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range resp.GetNamespaces() {
		out = append(out, n.GetName())
	}
	return out, nil
}

// listContainers returns the container records of namespace ns, streamed one by one (as
// containerd's own client does, so that many records never make one oversized message), or
// in one response from a containerd without ListStream.
func (a *containerdAPI) listContainers(ctx context.Context, ns string) ([]*containersapi.Container, error) {
	ctx, cancel := call(ctx, ns)
	defer cancel()
	stream, err := a.containers.ListStream(ctx, &containersapi.ListContainersRequest{})
	if err != nil {
		return nil, err
	}
	var out []*containersapi.Container
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return out, nil
		}
		if status.Code(err) == codes.Unimplemented && len(out) == 0 {
			resp, err := a.containers.List(ctx, &containersapi.ListContainersRequest{})
			if err != nil {
				return nil, err
			}
			if len(resp.GetContainers()) > maxContainerdRecords {
				return nil, fmt.Errorf("more than %d containers", maxContainerdRecords)
			}
			return resp.GetContainers(), nil
		}
		if err != nil {
			return nil, err
		}
		if len(out) == maxContainerdRecords {
			return nil, fmt.Errorf("more than %d containers", maxContainerdRecords)
		}
		if c := msg.GetContainer(); c != nil {
			out = append(out, c)
		}
	}
}

// listTasks returns the IDs of the containers of namespace ns that have a task, whatever its
// status: while a task exists, even an exited one, its root filesystem stays mounted.
func (a *containerdAPI) listTasks(ctx context.Context, ns string) (map[string]bool, error) {
	ctx, cancel := call(ctx, ns)
	defer cancel()
	resp, err := a.tasks.List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, t := range resp.GetTasks() {
		out[t.GetContainerID()] = true
		out[t.GetID()] = true
	}
	return out, nil
}

// snapshotMounts returns the mounts of the active snapshot key of snapshotter in namespace ns
// (what a task's root filesystem would mount; nothing is mounted).
func (a *containerdAPI) snapshotMounts(ctx context.Context, ns, snapshotter, key string) ([]*types.Mount, error) {
	ctx, cancel := call(ctx, ns)
	defer cancel()
	resp, err := a.snapshots.Mounts(ctx, &snapshotsapi.MountsRequest{Snapshotter: snapshotter, Key: key})
	if err != nil {
		return nil, err
	}
	return resp.GetMounts(), nil
}
