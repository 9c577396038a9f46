// Package discovery finds every container with a writable layer on a node, with its upper
// directory, its Kubernetes identity and its processes, from the host's mount table and the
// runtimes' own metadata on disk; stopped containerd containers, which only containerd's
// locked database maps to their snapshots, through read-only calls on containerd's socket. It
// knows the layouts of containerd's overlayfs snapshotter, Docker's overlay2 driver and
// containers/storage's overlay driver (CRI-O, podman), and learns their roots from the mount
// table.
//
// # Sources
//
//   - containerd: running containers from rootfs mounts at
//     <state>/io.containerd.runtime.v2.task/<ns>/<id>/rootfs and from task bundles whose
//     init.pid is a live process with an overlay root (a containerd in a private mount
//     namespace); identity from the bundle's config.json io.kubernetes.cri.* annotations.
//     Stopped ones (a container record with a snapshot and no task: the CRI plugin deletes a
//     task as soon as it exits and keeps the record until the kubelet removes the container)
//     through containerd's gRPC socket (Options.ContainerdSocket): the namespaces, containers
//     and tasks services' List and the snapshots service's Mounts, nothing else; the upper
//     directory Mounts gives is accepted only as <root>/snapshots/<N>/fs under a snapshotter
//     root that running containers' mounts, containerd's config.toml or ContainerdRoot name,
//     reached without links; identity from the record's labels (the kubelet's io.kubernetes.*
//     and the plugin's io.cri-containerd.kind). Containers in Docker's "moby" namespace are
//     left to Docker.
//   - Docker overlay2: every <root>/image/overlay2/layerdb/mounts/<id>/mount-id whose
//     <root>/overlay2/<mount-id>/diff exists, running when .../merged is mounted (a relative
//     upperdir in mountinfo is resolved against <root>/overlay2); identity from
//     <root>/containers/<id>/config.v2.json. With the containerd image store, running
//     containers from <root>/rootfs/overlayfs/<id> mounts.
//   - containers/storage: every entry of containers.json and volatile-containers.json under
//     the graph root and the run roots whose <root>/overlay/<layer>/diff exists, running when
//     .../merged is mounted; identity from userdata/config.json (CRI-O's kubelet labels as
//     annotations), CRI-O's metadata in the list, or podman's first name.
//
// Processes are the runtime's recorded PID plus every process whose cgroup path names the
// container (conmon monitors excluded), each kept only if the "/" mount of its own
// mountinfo is the container's overlay (same device and upperdir), so a reused PID is never
// attributed to a container. Metadata files are read without following symbolic links and
// with size caps; a malformed or hostile file costs one error for one container.
//
// # Known limits
//
// Stopped containerd containers are found only through containerd's socket: without it (no
// socket, NoContainerdSocket, or containerd down, which is reported as an error) the previous
// instance of a restarted container still fills the disk without being reported here. A
// snapshotter other than an overlay one (devmapper, a block device) costs an error per
// stopped container. Stopped containers of a Docker daemon that uses the containerd image
// store (namespace "moby") are not found.
//
// podman keeps a container's state in its own database, so a podman container whose layer is
// mounted without a process (podman mount) is reported as running with no PIDs.
package discovery
