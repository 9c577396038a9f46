package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Runtime names a container engine whose writable layers the agent reads.
// +kubebuilder:validation:Enum=containerd;docker;containers-storage
type Runtime string

const (
	// RuntimeContainerd is containerd with the overlayfs snapshotter (CRI or not).
	RuntimeContainerd Runtime = "containerd"
	// RuntimeDocker is Docker with the overlay2 storage driver (plain Docker or cri-dockerd).
	RuntimeDocker Runtime = "docker"
	// RuntimeContainersStorage is containers/storage with the overlay driver (CRI-O, podman).
	RuntimeContainersStorage Runtime = "containers-storage"
)

// ContainerState says whether a container is running.
// +kubebuilder:validation:Enum=Running;Stopped
type ContainerState string

const (
	// ContainerRunning is a container whose writable layer is mounted and in use.
	ContainerRunning ContainerState = "Running"
	// ContainerStopped is a container that exited but whose writable layer is still on disk
	// (for example the previous instance of a restarted container).
	ContainerStopped ContainerState = "Stopped"
)

// NodeLayerReportStatus is what the agent measured on its node.
type NodeLayerReportStatus struct {
	// scanTime is when the scan behind these figures finished.
	// +optional
	ScanTime *metav1.Time `json:"scanTime,omitempty"`

	// scanDuration is how long that scan took.
	// +optional
	ScanDuration *metav1.Duration `json:"scanDuration,omitempty"`

	// agentVersion is the version of the agent that wrote the report.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	AgentVersion string `json:"agentVersion,omitempty"`

	// runtimes are the container engines found on the node.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=3
	Runtimes []Runtime `json:"runtimes,omitempty"`

	// filesystems are the node filesystems that hold writable layers.
	// +optional
	// +listType=map
	// +listMapKey=path
	// +kubebuilder:validation:MaxItems=8
	Filesystems []FilesystemUsage `json:"filesystems,omitempty"`

	// containerCount is the number of containers with a writable layer on the node (it can
	// exceed the length of containers, which is bounded).
	// +optional
	ContainerCount int32 `json:"containerCount,omitempty"`

	// totalBytes is the sum of the writable layers of all those containers.
	// +optional
	TotalBytes int64 `json:"totalBytes,omitempty"`

	// nodeAvailableBytes is the free space of the filesystem holding most writable layers.
	// +optional
	NodeAvailableBytes int64 `json:"nodeAvailableBytes,omitempty"`

	// kubeletEviction is the node's kubelet hard eviction thresholds for the filesystems
	// holding writable layers, as the agent read them from the kubelet's command line and
	// configuration files. Unset (an older agent), the controller assumes the kubelet's
	// defaults.
	// +optional
	KubeletEviction *KubeletEviction `json:"kubeletEviction,omitempty"`

	// containers are the containers with a writable layer, largest first. Pod sandboxes are
	// left out.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	Containers []ContainerLayer `json:"containers,omitempty"`

	// conditions: Scanned says whether the last scan covered every container.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// FilesystemUsage is a node filesystem's size and free space, as statfs reports them.
type FilesystemUsage struct {
	// path is where the filesystem holding writable layers is, on the node.
	// +required
	// +kubebuilder:validation:MaxLength=4096
	Path string `json:"path"`
	// capacityBytes is the filesystem's size.
	// +required
	CapacityBytes int64 `json:"capacityBytes"`
	// availableBytes is the space unprivileged users may still write.
	// +required
	AvailableBytes int64 `json:"availableBytes"`
	// inodes is the filesystem's number of inodes (0 where it has no fixed number).
	// +optional
	Inodes int64 `json:"inodes,omitempty"`
	// inodesFree is the number of free inodes.
	// +optional
	InodesFree int64 `json:"inodesFree,omitempty"`
	// kubeletFilesystem says which of the kubelet's filesystems this is, and so which
	// thresholds of kubeletEviction apply to the writable layers on it: nodefs when it holds
	// the kubelet's root directory, imagefs when it is a separate filesystem of the container
	// runtime (the kubelet then counts writable layers with the images). Unset when the
	// agent could not tell; the controller then applies the nodefs thresholds.
	// +optional
	KubeletFilesystem KubeletFilesystem `json:"kubeletFilesystem,omitempty"`
}

// KubeletFilesystem names one of the kubelet's filesystems, as its eviction signals do.
// +kubebuilder:validation:Enum=nodefs;imagefs
type KubeletFilesystem string

const (
	// KubeletNodefs is the filesystem of the kubelet's root directory (signals nodefs.*).
	KubeletNodefs KubeletFilesystem = "nodefs"
	// KubeletImagefs is the container runtime's filesystem when it is separate from nodefs
	// (signals imagefs.*).
	KubeletImagefs KubeletFilesystem = "imagefs"
)

// KubeletEvictionSource says where the agent found its kubelet's hard eviction thresholds.
// +kubebuilder:validation:Enum=ConfigFile;Flags;Defaults
type KubeletEvictionSource string

const (
	// KubeletEvictionConfigFile: the kubelet's configuration, its --config file merged with
	// the drop-ins of --config-dir (with the kubelet's defaults where the configuration
	// leaves evictionHard unset, or sets mergeDefaultEvictionSettings).
	KubeletEvictionConfigFile KubeletEvictionSource = "ConfigFile"
	// KubeletEvictionFlags: the kubelet's command line, whose --eviction-hard replaces every
	// threshold of the configuration; also a kubelet run with neither --config, --config-dir
	// nor --eviction-hard, which has no hard eviction thresholds at all.
	KubeletEvictionFlags KubeletEvictionSource = "Flags"
	// KubeletEvictionDefaults: the agent could not read the kubelet's configuration (message
	// says why) and reports the kubelet's defaults.
	KubeletEvictionDefaults KubeletEvictionSource = "Defaults"
)

// KubeletEviction is the kubelet's hard eviction thresholds on its filesystem signals. Each
// threshold is the free amount under which the kubelet evicts pods (1 s grace period, no
// PodDisruptionBudget), as the kubelet expresses it: a percentage of the filesystem's capacity
// ("10%", "7.5%") or a quantity ("2Gi" of free space, "100k" free inodes). An unset threshold
// means the kubelet has none for that signal.
type KubeletEviction struct {
	// source says where the thresholds come from: ConfigFile, Flags, or Defaults when the
	// kubelet's configuration could not be read.
	// +required
	Source KubeletEvictionSource `json:"source"`

	// nodefsAvailable is evictionHard nodefs.available: free space of the kubelet's root
	// filesystem.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	NodefsAvailable string `json:"nodefsAvailable,omitempty"`

	// nodefsInodesFree is evictionHard nodefs.inodesFree: free inodes of that filesystem.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	NodefsInodesFree string `json:"nodefsInodesFree,omitempty"`

	// imagefsAvailable is evictionHard imagefs.available: free space of the container
	// runtime's filesystem when it is separate from the root filesystem.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	ImagefsAvailable string `json:"imagefsAvailable,omitempty"`

	// imagefsInodesFree is evictionHard imagefs.inodesFree: free inodes of that filesystem.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	ImagefsInodesFree string `json:"imagefsInodesFree,omitempty"`

	// message says what the agent read (the kubelet's process, files and flags) or why it
	// could not.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// ContainerLayer is one container's writable layer.
type ContainerLayer struct {
	// runtime is the engine that runs the container.
	// +required
	Runtime Runtime `json:"runtime"`
	// containerID is the engine's ID of the container, as in the pod's
	// status.containerStatuses[].containerID after the "<runtime>://" scheme.
	// +required
	// +kubebuilder:validation:MaxLength=128
	ContainerID string `json:"containerID"`
	// state is Running or Stopped (exited, its layer still on disk).
	// +required
	State ContainerState `json:"state"`
	// namespace is the pod's namespace (empty for a container outside Kubernetes).
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// pod is the pod's name.
	// +optional
	Pod string `json:"pod,omitempty"`
	// podUID is the pod's UID.
	// +optional
	PodUID string `json:"podUID,omitempty"`
	// container is the container's name in the pod (or the engine's name for it).
	// +optional
	Container string `json:"container,omitempty"`
	// owner is the pod's controller (its ownerReference with controller=true), e.g. the
	// ReplicaSet of a Deployment's pod; unset for a pod without one or a container outside
	// Kubernetes.
	// +optional
	Owner *PodOwner `json:"owner,omitempty"`
	// upperDir is the writable layer's directory on the node.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	UpperDir string `json:"upperDir,omitempty"`
	// bytes is the writable layer's size as the disk counts it: allocated blocks, hardlinks
	// once (what `du -sB1` prints).
	// +required
	Bytes int64 `json:"bytes"`
	// apparentBytes is the sum of file sizes (what Docker and containers/storage report).
	// +optional
	ApparentBytes int64 `json:"apparentBytes,omitempty"`
	// inodes is the number of entries in the writable layer.
	// +optional
	Inodes int64 `json:"inodes,omitempty"`
	// deletedOpenBytes is held by files the container deleted but still keeps open: no walk
	// sees them, yet they fill the disk until closed.
	// +optional
	DeletedOpenBytes int64 `json:"deletedOpenBytes,omitempty"`
	// growthBytesPerMinute is the smoothed growth rate of bytes (negative when shrinking).
	// +optional
	GrowthBytesPerMinute int64 `json:"growthBytesPerMinute,omitempty"`
	// hotPaths are the largest directories of the layer, and those named by any policy that
	// selects the pod, largest first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	HotPaths []HotPathUsage `json:"hotPaths,omitempty"`
}

// PodOwner names the controller of a pod.
type PodOwner struct {
	// kind is the owner's kind, e.g. ReplicaSet, StatefulSet, DaemonSet or Job.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`
	// name is the owner's name, in the pod's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// HotPathUsage is one directory's share of a writable layer.
type HotPathUsage struct {
	// path is the directory as the container sees it.
	// +required
	// +kubebuilder:validation:MaxLength=4096
	Path string `json:"path"`
	// bytes are the allocated bytes below path in the writable layer.
	// +required
	Bytes int64 `json:"bytes"`
	// files is the number of regular files below path in the writable layer.
	// +optional
	Files int64 `json:"files,omitempty"`
	// growthBytesPerMinute is the smoothed growth rate of bytes.
	// +optional
	GrowthBytesPerMinute int64 `json:"growthBytesPerMinute,omitempty"`
}

// NodeLayerReport is the node agent's measurement of every writable layer on one node. It is
// named after the node and written only by that node's agent.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=nlr,categories=layerkeeper
// +kubebuilder:printcolumn:name="Containers",type=integer,JSONPath=`.status.containerCount`
// +kubebuilder:printcolumn:name="Used",type=integer,JSONPath=`.status.totalBytes`
// +kubebuilder:printcolumn:name="Node available",type=integer,JSONPath=`.status.nodeAvailableBytes`
// +kubebuilder:printcolumn:name="Scanned",type=date,JSONPath=`.status.scanTime`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeLayerReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// status is what the agent measured.
	// +optional
	Status NodeLayerReportStatus `json:"status,omitempty"`
}

// NodeLayerReportList is a list of NodeLayerReport.
// +kubebuilder:object:root=true
type NodeLayerReportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeLayerReport `json:"items"`
}

func init() {
	SchemeBuilder.Register(&NodeLayerReport{}, &NodeLayerReportList{})
}
