package discovery

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/task"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// fakeContainerd serves the four read-only calls discovery makes from fixed records, as
// containerd's API would, on a unix socket, and records every method called.
type fakeContainerd struct {
	namespaces []string
	// containers and tasks (container IDs with a task) per namespace.
	containers map[string][]*containersapi.Container
	tasks      map[string][]string
	// mounts per "<namespace>/<snapshotter>/<key>"; absent: NotFound, as containerd answers
	// for a removed snapshot.
	mounts map[string][]*types.Mount
	// noListStream answers ListStream with Unimplemented, as a containerd before 1.3 would.
	noListStream bool
	// onMounts, if set, runs at each Mounts call.
	onMounts func()

	mu    sync.Mutex
	calls []string
}

func (f *fakeContainerd) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// serve listens on socket (creating its directory) until the test ends.
func (f *fakeContainerd) serve(t *testing.T, socket string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	record := func(method string) {
		f.mu.Lock()
		f.calls = append(f.calls, method)
		f.mu.Unlock()
	}
	s := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(info.FullMethod)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			record(info.FullMethod)
			return h(srv, ss)
		}),
	)
	namespacesapi.RegisterNamespacesServer(s, fakeNamespaces{f: f})
	containersapi.RegisterContainersServer(s, fakeContainers{f: f})
	tasksapi.RegisterTasksServer(s, fakeTasks{f: f})
	snapshotsapi.RegisterSnapshotsServer(s, fakeSnapshots{f: f})
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
}

// namespaceOf is the containerd-namespace header of a call, "" when missing.
func namespaceOf(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(containerdNamespaceHeader); len(v) == 1 {
		return v[0]
	}
	return ""
}

var errNoNamespace = status.Error(codes.FailedPrecondition, "namespace is required")

type fakeNamespaces struct {
	namespacesapi.UnimplementedNamespacesServer
	f *fakeContainerd
}

func (n fakeNamespaces) List(context.Context, *namespacesapi.ListNamespacesRequest) (*namespacesapi.ListNamespacesResponse, error) {
	resp := &namespacesapi.ListNamespacesResponse{}
	for _, ns := range n.f.namespaces {
		resp.Namespaces = append(resp.Namespaces, &namespacesapi.Namespace{Name: ns})
	}
	return resp, nil
}

type fakeContainers struct {
	containersapi.UnimplementedContainersServer
	f *fakeContainerd
}

func (c fakeContainers) List(ctx context.Context, _ *containersapi.ListContainersRequest) (*containersapi.ListContainersResponse, error) {
	ns := namespaceOf(ctx)
	if ns == "" {
		return nil, errNoNamespace
	}
	return &containersapi.ListContainersResponse{Containers: c.f.containers[ns]}, nil
}

func (c fakeContainers) ListStream(_ *containersapi.ListContainersRequest, s containersapi.Containers_ListStreamServer) error {
	if c.f.noListStream {
		return status.Error(codes.Unimplemented, "fake: no ListStream")
	}
	ns := namespaceOf(s.Context())
	if ns == "" {
		return errNoNamespace
	}
	for _, ct := range c.f.containers[ns] {
		if err := s.Send(&containersapi.ListContainerMessage{Container: ct}); err != nil {
			return err
		}
	}
	return nil
}

type fakeTasks struct {
	tasksapi.UnimplementedTasksServer
	f *fakeContainerd
}

func (t fakeTasks) List(ctx context.Context, _ *tasksapi.ListTasksRequest) (*tasksapi.ListTasksResponse, error) {
	ns := namespaceOf(ctx)
	if ns == "" {
		return nil, errNoNamespace
	}
	resp := &tasksapi.ListTasksResponse{}
	for _, id := range t.f.tasks[ns] {
		resp.Tasks = append(resp.Tasks, &task.Process{ContainerID: id, ID: id, Pid: 1234, Status: task.Status_STOPPED})
	}
	return resp, nil
}

type fakeSnapshots struct {
	snapshotsapi.UnimplementedSnapshotsServer
	f *fakeContainerd
}

func (s fakeSnapshots) Mounts(ctx context.Context, req *snapshotsapi.MountsRequest) (*snapshotsapi.MountsResponse, error) {
	ns := namespaceOf(ctx)
	if ns == "" {
		return nil, errNoNamespace
	}
	if s.f.onMounts != nil {
		s.f.onMounts()
	}
	ms, ok := s.f.mounts[ns+"/"+req.GetSnapshotter()+"/"+req.GetKey()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "snapshot %s does not exist", req.GetKey())
	}
	return &snapshotsapi.MountsResponse{Mounts: ms}, nil
}

// overlayMounts is what containerd's overlayfs snapshotter answers for an active snapshot.
func overlayMounts(upper string) []*types.Mount {
	dir := filepath.Dir(upper)
	return []*types.Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"index=off", "workdir=" + filepath.Join(dir, "work"), "upperdir=" + upper,
		"lowerdir=" + filepath.Join(filepath.Dir(dir), "2", "fs") + ":" + filepath.Join(filepath.Dir(dir), "1", "fs"),
	}}}
}

// criRecord is a container record as the CRI plugin creates it for the kubelet.
func criRecord(id string, sandbox bool, pod, ns, uid, name string) *containersapi.Container {
	l := map[string]string{labelPodName: pod, labelPodNamespace: ns, labelPodUID: uid, criKindLabel: "container"}
	if sandbox {
		l[criKindLabel] = criKindSandbox
	} else {
		l[labelContainerName] = name
	}
	return &containersapi.Container{ID: id, Labels: l, Snapshotter: "overlayfs", SnapshotKey: id, Image: "docker.io/library/app:1"}
}
