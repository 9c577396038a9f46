package v1alpha1

// LayerState is a container's (or pod's) place on the remediation ladder. The values are the
// ones written to the layerkeeper.dev/state annotation.
// +kubebuilder:validation:Enum=ok;warn;offload;restart
type LayerState string

const (
	// StateOK is under every threshold.
	StateOK LayerState = "ok"
	// StateWarn is over thresholds.warn.
	StateWarn LayerState = "warn"
	// StateOffload is over thresholds.offload, or escalated by node pressure.
	StateOffload LayerState = "offload"
	// StateRestart is over thresholds.restart.
	StateRestart LayerState = "restart"
)

// Annotations layerkeeper writes on selected pods and their owning workloads.
const (
	// AnnotationWritableLayerBytes is the largest writable layer of the pod's (or, on a
	// workload, of its pods') covered containers, in bytes.
	AnnotationWritableLayerBytes = "layerkeeper.dev/writable-layer-bytes"
	// AnnotationState is the LayerState (ok, warn, offload, restart).
	AnnotationState = "layerkeeper.dev/state"
	// AnnotationHotPath is the largest directory of that writable layer, as the container
	// sees it.
	AnnotationHotPath = "layerkeeper.dev/hot-path"
	// AnnotationPolicy names the LayerPolicy whose thresholds decided the state.
	AnnotationPolicy = "layerkeeper.dev/policy"
	// AnnotationRestartReason, on a pod template, says why layerkeeper restarted the workload.
	AnnotationRestartReason = "layerkeeper.dev/restart-reason"
	// AnnotationRestartedAt is the pod-template annotation `kubectl rollout restart` sets.
	AnnotationRestartedAt = "kubectl.kubernetes.io/restartedAt"
	// AnnotationLastRemediation, on a workload, is when layerkeeper last restarted it (or
	// evicted one of its pods), RFC 3339.
	AnnotationLastRemediation = "layerkeeper.dev/last-remediation"
	// AnnotationRemediationCount, on a workload, counts its consecutive remediations; the
	// cooldown doubles with each (repeat offender).
	AnnotationRemediationCount = "layerkeeper.dev/remediation-count"
	// AnnotationRemediatedBy, on a workload or an evicted pod, names the policy that
	// remediated it; a remediation counts against the policy's maxConcurrent until the
	// workload is available again or the pod is gone.
	AnnotationRemediatedBy = "layerkeeper.dev/remediated-by"
	// AnnotationRemediationAction, on a workload, is the last remediation's action
	// (RolloutRestart or EvictPod).
	AnnotationRemediationAction = "layerkeeper.dev/remediation-action"
)

// Labels layerkeeper puts on the LayerOffloads it creates, to find them by policy and pod.
const (
	// LabelPolicy is the ordering policy's name.
	LabelPolicy = "layerkeeper.dev/policy"
	// LabelPodUID is the offloaded pod's UID.
	LabelPodUID = "layerkeeper.dev/pod-uid"
)

// Keys of the Secret named by spec.offload.s3.credentialsSecretRef.
const (
	// CredentialsKeyAccessKeyID is the access key ID (required).
	CredentialsKeyAccessKeyID = "AWS_ACCESS_KEY_ID"
	// CredentialsKeySecretAccessKey is the secret access key (required).
	CredentialsKeySecretAccessKey = "AWS_SECRET_ACCESS_KEY"
	// CredentialsKeySessionToken is a session token (optional).
	CredentialsKeySessionToken = "AWS_SESSION_TOKEN"
)

// LayerPolicyFinalizer lets the controller remove its annotations and conditions from the
// workloads a policy covered before the policy goes away.
const LayerPolicyFinalizer = "layerkeeper.dev/cleanup"

// Condition types.
const (
	// ConditionReady, on a LayerPolicy, is True when the policy is valid and everything it
	// refers to (credentials Secret, bucket) is usable.
	ConditionReady = "Ready"

	// ConditionWritableLayerWithinLimits, on a Deployment, StatefulSet or DaemonSet, is True
	// when every covered container of its pods is under thresholds.warn, False when one is
	// over, and Unknown when the figures are missing or stale.
	ConditionWritableLayerWithinLimits = "WritableLayerWithinLimits"

	// ConditionScanned, on a NodeLayerReport, is True when the last scan measured every
	// container of the node.
	ConditionScanned = "Scanned"

	// ConditionComplete, on a LayerOffload, is True once it Succeeded.
	ConditionComplete = "Complete"
	// ConditionFailed, on a LayerOffload, is True once it Failed.
	ConditionFailed = "Failed"
)

// Reasons of the Ready condition of a LayerPolicy.
const (
	// ReasonPolicyReady: the policy is valid and usable.
	ReasonPolicyReady = "PolicyReady"
	// ReasonInvalidSelector: spec.selector cannot be turned into a label selector.
	ReasonInvalidSelector = "InvalidSelector"
	// ReasonInvalidPrefixTemplate: spec.offload.s3.prefix is not a valid template.
	ReasonInvalidPrefixTemplate = "InvalidPrefixTemplate"
	// ReasonCredentialsSecretNotFound: spec.offload.s3.credentialsSecretRef names no Secret,
	// or one without the required keys.
	ReasonCredentialsSecretNotFound = "CredentialsSecretNotFound"
	// ReasonInvalidNodePressure: spec.nodePressure sits at or below the kubelet's own eviction
	// threshold on a node running a selected pod (as its NodeLayerReport says; the kubelet's
	// defaults when no such node reports one), so there the kubelet would evict before
	// layerkeeper acts. The message names the nodes.
	ReasonInvalidNodePressure = "InvalidNodePressure"
	// ReasonBucketUnreachable: offloads to the bucket failed (missing bucket, wrong
	// credentials, endpoint unreachable). Also the reason of a LayerOffload's Failed
	// condition for the same errors.
	ReasonBucketUnreachable = "BucketUnreachable"
)

// Reasons of the WritableLayerWithinLimits condition.
const (
	// ReasonWithinLimits: every covered container is under thresholds.warn.
	ReasonWithinLimits = "WithinLimits"
	// ReasonOverWarn: a container is over thresholds.warn.
	ReasonOverWarn = "OverWarnThreshold"
	// ReasonOverOffload: a container is over thresholds.offload.
	ReasonOverOffload = "OverOffloadThreshold"
	// ReasonOverRestart: a container is over thresholds.restart.
	ReasonOverRestart = "OverRestartThreshold"
	// ReasonNodePressure: the node is short of free space and the container is among its
	// largest.
	ReasonNodePressure = "NodePressure"
	// ReasonNoFigures: no report measures the pod's containers yet.
	ReasonNoFigures = "NoFigures"
	// ReasonStaleFigures: the node's report is too old to act on.
	ReasonStaleFigures = "StaleFigures"
)

// Reasons of the Scanned condition of a NodeLayerReport.
const (
	// ReasonScanComplete: every container was measured.
	ReasonScanComplete = "ScanComplete"
	// ReasonScanPartial: some containers could not be measured; the message says which and why.
	ReasonScanPartial = "ScanPartial"
)

// Reasons of the Complete and Failed conditions of a LayerOffload.
const (
	// ReasonOffloaded: every selected file was uploaded and verified.
	ReasonOffloaded = "Offloaded"
	// ReasonUploadFailed: uploads failed; the message names the first error.
	ReasonUploadFailed = "UploadFailed"
	// ReasonContainerGone: the container the offload was ordered for no longer exists.
	ReasonContainerGone = "ContainerGone"
)

// Event reasons, on pods, workloads and policies.
const (
	// EventWritableLayerOverLimit: a container crossed a threshold upwards.
	EventWritableLayerOverLimit = "WritableLayerOverLimit"
	// EventWritableLayerBackWithinLimits: a container dropped back under thresholds.warn.
	EventWritableLayerBackWithinLimits = "WritableLayerBackWithinLimits"
	// EventLogsOffloaded: hot-path files were shipped to S3 and verified.
	EventLogsOffloaded = "LogsOffloaded"
	// EventOffloadFailed: an offload failed; files were kept.
	EventOffloadFailed = "OffloadFailed"
	// EventRolloutRestarted: layerkeeper restarted a workload.
	EventRolloutRestarted = "RolloutRestarted"
	// EventPodEvicted: layerkeeper evicted a pod.
	EventPodEvicted = "PodEvicted"
	// EventRemediationSkipped: a remediation was due but a safety limit held it back.
	EventRemediationSkipped = "RemediationSkipped"
	// EventRemediationBlocked: an eviction stayed refused (PodDisruptionBudget) past its
	// bound, or the offload that must precede a restart failed (the restart waits).
	EventRemediationBlocked = "RemediationBlocked"
	// EventPoliciesOverlap: several policies select the same pod.
	EventPoliciesOverlap = "PoliciesOverlap"
)
