package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PolicyMode says whether a LayerPolicy only observes or also acts.
// +kubebuilder:validation:Enum=Audit;Enforce
type PolicyMode string

const (
	// ModeAudit observes: annotations, the workload condition, events and metrics. It never
	// offloads, restarts or evicts anything.
	ModeAudit PolicyMode = "Audit"
	// ModeEnforce does everything Audit does and also offloads hot paths to S3 and restarts or
	// evicts workloads, within the safety limits of spec.remediation.
	ModeEnforce PolicyMode = "Enforce"
)

// RemediationAction is what Enforce mode does to a workload that stays over its restart
// threshold.
// +kubebuilder:validation:Enum=RolloutRestart;EvictPod;None
type RemediationAction string

const (
	// ActionRolloutRestart sets kubectl.kubernetes.io/restartedAt on the owner's pod template,
	// exactly as `kubectl rollout restart` does, so the owner's controller rolls it gracefully.
	ActionRolloutRestart RemediationAction = "RolloutRestart"
	// ActionEvictPod evicts the one offending pod through the Eviction API, which honours
	// PodDisruptionBudgets.
	ActionEvictPod RemediationAction = "EvictPod"
	// ActionNone only signals: annotations, condition and events, no restart.
	ActionNone RemediationAction = "None"
)

// LayerPolicySpec says which pods a policy covers, how large their writable layers may grow,
// and what happens when they grow larger.
// +kubebuilder:validation:XValidation:rule="self.mode != 'Enforce' || !has(self.thresholds) || !has(self.thresholds.offload) || (has(self.offload) && has(self.offload.s3))",message="spec.offload.s3 is required when spec.mode is Enforce and spec.thresholds.offload is set",fieldPath=".offload",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.mode != 'Enforce' || !has(self.thresholds) || !has(self.thresholds.offload) || (has(self.hotPaths) && size(self.hotPaths) > 0)",message="spec.hotPaths must name at least one path when spec.mode is Enforce and spec.thresholds.offload is set",fieldPath=".hotPaths",reason=FieldValueRequired
type LayerPolicySpec struct {
	// selector selects the pods, in the policy's own namespace, that this policy covers.
	// An empty selector ({}) selects every pod in the namespace.
	// +required
	Selector metav1.LabelSelector `json:"selector"`

	// containers restricts the policy to the containers with these names. Empty means every
	// container of a selected pod (init containers and the pod sandbox are never covered).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	Containers []string `json:"containers,omitempty"`

	// mode is Audit (observe and tell: annotations, conditions, events; the default) or
	// Enforce (also offload hot paths to S3 and restart or evict, within spec.remediation).
	// +optional
	// +kubebuilder:default=Audit
	Mode PolicyMode `json:"mode,omitempty"`

	// thresholds are the writable-layer sizes, per container, at which the policy warns,
	// offloads and restarts. Each is optional; those set must be ordered warn <= offload <= restart.
	// +optional
	Thresholds Thresholds `json:"thresholds,omitempty"`

	// nodePressure makes the policy act before the kubelet does: when the free space of the
	// node filesystem holding a container's writable layer falls under the margin, the
	// largest covered containers on that node escalate even below their thresholds.
	// +optional
	NodePressure *NodePressure `json:"nodePressure,omitempty"`

	// hotPaths are the directories, as the container sees them, whose files are measured
	// exactly and shipped to S3 on offload (for example /opt/airflow/logs).
	// +optional
	// +listType=map
	// +listMapKey=path
	// +kubebuilder:validation:MaxItems=16
	HotPaths []HotPath `json:"hotPaths,omitempty"`

	// offload says where hot-path files are shipped before they are deleted from the
	// container. Required in Enforce mode when thresholds.offload is set.
	// +optional
	Offload *Offload `json:"offload,omitempty"`

	// remediation says what Enforce mode does to a workload still over thresholds.restart,
	// and the limits that keep it safe.
	// +optional
	Remediation Remediation `json:"remediation,omitempty"`
}

// Thresholds are writable-layer sizes per container (bytes as the disk counts them: allocated
// blocks, hardlinks once, like `du`).
// +kubebuilder:validation:XValidation:rule="!has(self.warn) || !has(self.offload) || quantity(string(self.warn)).compareTo(quantity(string(self.offload))) <= 0",message="thresholds.warn must be less than or equal to thresholds.offload",fieldPath=".warn"
// +kubebuilder:validation:XValidation:rule="!has(self.offload) || !has(self.restart) || quantity(string(self.offload)).compareTo(quantity(string(self.restart))) <= 0",message="thresholds.offload must be less than or equal to thresholds.restart",fieldPath=".offload"
// +kubebuilder:validation:XValidation:rule="!has(self.warn) || !has(self.restart) || quantity(string(self.warn)).compareTo(quantity(string(self.restart))) <= 0",message="thresholds.warn must be less than or equal to thresholds.restart",fieldPath=".warn"
type Thresholds struct {
	// warn is the size over which a container is reported: pod and owner annotations, the
	// WritableLayerWithinLimits=False condition on the owner and a WritableLayerOverLimit event.
	// +optional
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="thresholds.warn must be greater than zero"
	Warn *resource.Quantity `json:"warn,omitempty"`

	// offload is the size over which, in Enforce mode, the container's hot-path files are
	// shipped to S3 and, once each upload is verified, deleted from the container.
	// +optional
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="thresholds.offload must be greater than zero"
	Offload *resource.Quantity `json:"offload,omitempty"`

	// restart is the size over which, in Enforce mode, the workload is restarted or the pod
	// evicted, as spec.remediation.action says. Keep it below any ephemeral-storage limit and
	// the kubelet's eviction threshold so layerkeeper acts gracefully before the kubelet does.
	// +optional
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="thresholds.restart must be greater than zero"
	Restart *resource.Quantity `json:"restart,omitempty"`

	// leadTime makes a threshold count as crossed early: when the container's measured growth
	// rate says it will reach the threshold within leadTime. Unset, only actual sizes count.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="thresholds.leadTime must not be negative"
	LeadTime *metav1.Duration `json:"leadTime,omitempty"`
}

// NodePressure is a free-space margin on the node filesystem that holds writable layers.
type NodePressure struct {
	// minAvailablePercent is the share of the node filesystem's capacity that must stay free.
	// Below it the largest covered containers on the node escalate as if over their offload
	// (and, if still short, restart) threshold. It must sit above the kubelet's own eviction
	// threshold for that filesystem (nodefs.available, 10% by default, or imagefs.available
	// on a separate runtime filesystem), or the kubelet acts first: the Ready condition names
	// the nodes running selected pods whose reported thresholds it does not clear.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=99
	MinAvailablePercent int32 `json:"minAvailablePercent"`

	// minInodesFreePercent is the same margin for inodes, checked the same way against the
	// kubelet's nodefs.inodesFree (5% by default) or imagefs.inodesFree. Unset, inodes are not
	// watched.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=99
	MinInodesFreePercent *int32 `json:"minInodesFreePercent,omitempty"`
}

// HotPath is a directory inside the container whose files are measured and offloaded.
type HotPath struct {
	// path is the directory as the container sees it: absolute, clean (no "..", ".", "//" or
	// trailing "/"), and not "/" itself.
	// +required
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="hotPaths[].path must be absolute (start with '/')"
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(e, e == '..')",message="hotPaths[].path must not contain '..'"
	// +kubebuilder:validation:XValidation:rule="!self.contains('//') && !self.endsWith('/') && !self.split('/').exists(e, e == '.')",message="hotPaths[].path must be clean: no '//', no '.' element and no trailing '/'"
	Path string `json:"path"`

	// include are globs, relative to path, of the files to ship ("**" matches any number of
	// directories, "*" anything within one name). Empty means every regular file.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Include []string `json:"include,omitempty"`

	// exclude are globs, relative to path, of files never shipped, even when included.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Exclude []string `json:"exclude,omitempty"`

	// minAge is how long a file must have gone unmodified before it is shipped, so files still
	// being written (the active log) stay in place. Defaults to 10m.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="hotPaths[].minAge must not be negative"
	MinAge *metav1.Duration `json:"minAge,omitempty"`

	// deleteAfterUpload deletes each shipped file from the container once its object in S3
	// is verified (size and checksum). That is what frees the disk; false only archives.
	// Defaults to true.
	// +optional
	// +kubebuilder:default=true
	DeleteAfterUpload *bool `json:"deleteAfterUpload,omitempty"`
}

// Offload is where hot-path files go.
type Offload struct {
	// s3 is the S3 (or S3-compatible) bucket that receives the files.
	// +required
	S3 *S3Target `json:"s3"`

	// ttlAfterFinished is how long a finished LayerOffload record is kept before it is
	// garbage-collected. Defaults to 24h.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="offload.ttlAfterFinished must not be negative"
	TTLAfterFinished *metav1.Duration `json:"ttlAfterFinished,omitempty"`
}

// S3Target is a bucket and the way to reach it.
type S3Target struct {
	// bucket is the name of an existing bucket (3-63 lowercase letters, digits, '.' and '-',
	// starting and ending with a letter or digit, not shaped like an IP address).
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9][a-z0-9.-]*[a-z0-9]$')",message="offload.s3.bucket must be a valid S3 bucket name: lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
	// +kubebuilder:validation:XValidation:rule="!self.contains('..') && !self.matches('^[0-9]+\\\\.[0-9]+\\\\.[0-9]+\\\\.[0-9]+$')",message="offload.s3.bucket must be a valid S3 bucket name: no '..' and not an IP address"
	Bucket string `json:"bucket"`

	// prefix is a Go template for the key prefix of every object; the object key is the prefix,
	// "/", then the file's path inside the container. Fields: {{.Namespace}}, {{.Owner}}
	// (the owning workload's name, or the pod's for a bare pod), {{.OwnerKind}}, {{.Pod}},
	// {{.PodUID}}, {{.Container}}, {{.Node}}, {{.Policy}}.
	// +optional
	// +kubebuilder:default="{{.Namespace}}/{{.Owner}}/{{.Pod}}/{{.Container}}"
	// +kubebuilder:validation:MaxLength=512
	Prefix string `json:"prefix,omitempty"`

	// region is the bucket's region. Empty uses the region of the default AWS configuration
	// (AWS_REGION), and us-east-1 if there is none.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^([a-z0-9-]+)?$`
	Region string `json:"region,omitempty"`

	// endpoint is the URL of an S3-compatible service (for example MinIO or Ceph RGW).
	// Empty uses AWS S3 itself.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self == '' || (isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != '')",message="offload.s3.endpoint must be an http or https URL"
	Endpoint string `json:"endpoint,omitempty"`

	// forcePathStyle addresses the bucket in the URL path (endpoint/bucket/key) instead of the
	// host name; most S3-compatible services need it.
	// +optional
	ForcePathStyle bool `json:"forcePathStyle,omitempty"`

	// credentialsSecretRef names a Secret in the policy's namespace with the keys
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally AWS_SESSION_TOKEN. Unset, the
	// agent uses the default AWS credential chain (IRSA, EKS Pod Identity, environment).
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`
}

// SecretReference names a Secret in the referring object's namespace.
type SecretReference struct {
	// name is the Secret's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// Remediation is what Enforce mode does past thresholds.restart, and its safety limits.
type Remediation struct {
	// action is RolloutRestart (roll the owning Deployment, StatefulSet or DaemonSet, like
	// `kubectl rollout restart`; a bare pod is evicted instead), EvictPod (evict the one pod
	// through the Eviction API, honouring PodDisruptionBudgets) or None (signal only).
	// +optional
	// +kubebuilder:default=RolloutRestart
	Action RemediationAction `json:"action,omitempty"`

	// offloadBeforeRestart ships every remaining hot-path file (regardless of minAge) before
	// the restart, so the logs outlive the container. Ignored when spec.offload is not set.
	// Defaults to true.
	// +optional
	// +kubebuilder:default=true
	OffloadBeforeRestart *bool `json:"offloadBeforeRestart,omitempty"`

	// cooldown is the least time between two remediations of the same workload; a workload
	// that comes back over the limit again and again waits exponentially longer. Defaults to 30m.
	// +optional
	// +kubebuilder:default="30m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="remediation.cooldown must not be negative"
	Cooldown *metav1.Duration `json:"cooldown,omitempty"`

	// maxConcurrent is the most remediations of this policy in progress at once (a restart is
	// in progress until the rolled workload is available again). Defaults to 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxConcurrent int32 `json:"maxConcurrent,omitempty"`
}

// LayerPolicyStatus is what the controller last observed of a policy.
type LayerPolicyStatus struct {
	// observedGeneration is the metadata.generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready says whether the policy is valid and usable (selector, prefix
	// template, credentials Secret, bucket).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// matchedPods is the number of pods the policy selects.
	// +optional
	MatchedPods int32 `json:"matchedPods,omitempty"`

	// overLimitPods is the number of selected pods over any threshold (or escalated by node
	// pressure).
	// +optional
	OverLimitPods int32 `json:"overLimitPods,omitempty"`

	// podsByState counts the selected pods in each state (warn, offload, restart).
	// +optional
	PodsByState PodStateCounts `json:"podsByState,omitempty"`

	// worstOffenders are the largest containers over a threshold, largest first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	WorstOffenders []Offender `json:"worstOffenders,omitempty"`

	// overlappingPolicies names the other policies that select some of the same pods; the
	// most restrictive threshold of all of them applies to those pods.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	OverlappingPolicies []string `json:"overlappingPolicies,omitempty"`

	// lastActions are the most recent offloads and remediations, newest first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	LastActions []ActionRecord `json:"lastActions,omitempty"`
}

// PodStateCounts counts pods per state.
type PodStateCounts struct {
	// warn is the number of pods over thresholds.warn only.
	// +optional
	Warn int32 `json:"warn,omitempty"`
	// offload is the number of pods over thresholds.offload (or escalated by node pressure).
	// +optional
	Offload int32 `json:"offload,omitempty"`
	// restart is the number of pods over thresholds.restart.
	// +optional
	Restart int32 `json:"restart,omitempty"`
}

// Offender is one container over a threshold.
type Offender struct {
	// pod is the pod's name.
	// +required
	Pod string `json:"pod"`
	// container is the container's name.
	// +required
	Container string `json:"container"`
	// node is the node the pod runs on.
	// +optional
	Node string `json:"node,omitempty"`
	// bytes is the container's writable-layer size.
	// +required
	Bytes int64 `json:"bytes"`
	// state is the container's state under this policy.
	// +required
	State LayerState `json:"state"`
	// hotPath is the largest directory of the writable layer, as the container sees it.
	// +optional
	HotPath string `json:"hotPath,omitempty"`
}

// ActionKind names one kind of action the controller takes.
// +kubebuilder:validation:Enum=Offload;RolloutRestart;EvictPod
type ActionKind string

const (
	// ActionKindOffload is a LayerOffload created for a pod.
	ActionKindOffload ActionKind = "Offload"
	// ActionKindRolloutRestart is a rollout restart of a workload.
	ActionKindRolloutRestart ActionKind = "RolloutRestart"
	// ActionKindEvictPod is an eviction of a pod.
	ActionKindEvictPod ActionKind = "EvictPod"
)

// ActionRecord is one action taken under a policy.
type ActionRecord struct {
	// kind is what was done.
	// +required
	Kind ActionKind `json:"kind"`
	// target is the object acted on, as kind/name (e.g. Deployment/airflow-scheduler).
	// +required
	Target string `json:"target"`
	// time is when it was done.
	// +required
	Time metav1.Time `json:"time"`
	// message says why, with the figures that led to it.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// LayerPolicy sets writable-layer limits for the pods it selects in its namespace, and says
// what layerkeeper does when a container grows past them.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=lp;lpol,categories=layerkeeper
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Matched",type=integer,JSONPath=`.status.matchedPods`
// +kubebuilder:printcolumn:name="Over limit",type=integer,JSONPath=`.status.overLimitPods`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LayerPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the policy asks for.
	// +required
	Spec LayerPolicySpec `json:"spec"`

	// status is what the controller last observed.
	// +optional
	Status LayerPolicyStatus `json:"status,omitempty"`
}

// LayerPolicyList is a list of LayerPolicy.
// +kubebuilder:object:root=true
type LayerPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LayerPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LayerPolicy{}, &LayerPolicyList{})
}
