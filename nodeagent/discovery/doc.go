// Package discovery finds every container with a writable layer on a node, with its upper
// directory, its Kubernetes identity and its processes, from the host's mount table and the
// runtimes' own metadata on disk, without talking to any runtime socket. It knows the layouts
// of containerd's overlayfs snapshotter, Docker's overlay2 driver and containers/storage's
// overlay driver (CRI-O, podman), and learns their roots from the mount table.
//
// # Sources
//
//   - containerd: running containers from rootfs mounts at
//     <state>/io.containerd.runtime.v2.task/<ns>/<id>/rootfs and from task bundles whose
//     init.pid is a live process with an overlay root (a containerd in a private mount
//     namespace); identity from the bundle's config.json io.kubernetes.cri.* annotations.
//     Containers in Docker's "moby" namespace are left to Docker.
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
// Stopped containerd containers are not found. Their snapshot directory stays on disk, but
// only containerd's bolt databases (meta.db and the snapshotter's metadata.db) say which
// snapshot belongs to which container, and containerd holds an exclusive lock on them while it
// runs (a read-only open blocks). They are found through containerd's snapshots API on its
// socket, which this package deliberately does not use; on a containerd node the previous
// instance of a restarted container therefore still fills the disk without being reported
// here. The same holds for stopped containers of a Docker daemon that uses the containerd
// image store.
//
// podman keeps a container's state in its own database, so a podman container whose layer is
// mounted without a process (podman mount) is reported as running with no PIDs.
package discovery
