package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OffloadPhase is where a LayerOffload is in its life.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type OffloadPhase string

const (
	// OffloadPending is an offload no agent has started yet.
	OffloadPending OffloadPhase = "Pending"
	// OffloadRunning is an offload the agent is carrying out.
	OffloadRunning OffloadPhase = "Running"
	// OffloadSucceeded is an offload whose every selected file was uploaded and verified (and,
	// where asked, deleted).
	OffloadSucceeded OffloadPhase = "Succeeded"
	// OffloadFailed is an offload that stopped on an error; files not verified in S3 were kept.
	OffloadFailed OffloadPhase = "Failed"
)

// OffloadReason says why an offload was ordered.
// +kubebuilder:validation:Enum=OverOffloadThreshold;NodePressure;BeforeRestart
type OffloadReason string

const (
	// OffloadReasonThreshold is a container over thresholds.offload.
	OffloadReasonThreshold OffloadReason = "OverOffloadThreshold"
	// OffloadReasonNodePressure is a node short of free space.
	OffloadReasonNodePressure OffloadReason = "NodePressure"
	// OffloadReasonBeforeRestart ships every remaining file before a restart.
	OffloadReasonBeforeRestart OffloadReason = "BeforeRestart"
)

// LayerOffloadSpec is one order to ship a container's hot-path files to S3.
type LayerOffloadSpec struct {
	// policyName is the LayerPolicy, in this namespace, that ordered the offload.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	PolicyName string `json:"policyName"`
	// nodeName is the node whose agent carries the offload out.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	NodeName string `json:"nodeName"`
	// podName is the pod whose container is offloaded.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	PodName string `json:"podName"`
	// podUID is that pod's UID; the agent refuses a pod with another UID.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	PodUID string `json:"podUID"`
	// containerName is the container's name in the pod.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	ContainerName string `json:"containerName"`
	// containerID is the engine's container ID, so a restarted container is not mistaken for
	// the one the offload was ordered for.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	ContainerID string `json:"containerID"`
	// reason says why the offload was ordered.
	// +required
	Reason OffloadReason `json:"reason"`
	// paths are the hot paths to ship.
	// +required
	// +listType=map
	// +listMapKey=path
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Paths []HotPath `json:"paths"`
	// ignoreMinAge ships files however recently they were written (before a restart, when
	// the container is about to go).
	// +optional
	IgnoreMinAge bool `json:"ignoreMinAge,omitempty"`
	// target is the bucket, with prefix already resolved for this pod and container.
	// +required
	Target S3Target `json:"target"`
}

// LayerOffloadStatus is the agent's progress on an offload.
type LayerOffloadStatus struct {
	// phase is Pending, Running, Succeeded or Failed.
	// +optional
	Phase OffloadPhase `json:"phase,omitempty"`
	// attempts is how many times the agent started the offload.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// startTime is when the agent first started it.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when it reached Succeeded or Failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// uploadedObjects is the number of objects uploaded and verified.
	// +optional
	UploadedObjects int64 `json:"uploadedObjects,omitempty"`
	// uploadedBytes is their total size.
	// +optional
	UploadedBytes int64 `json:"uploadedBytes,omitempty"`
	// deletedFiles is the number of files deleted from the container after verification.
	// +optional
	DeletedFiles int64 `json:"deletedFiles,omitempty"`
	// freedBytes is the allocated size of those files.
	// +optional
	FreedBytes int64 `json:"freedBytes,omitempty"`
	// skippedFiles is the number of files left in place (too young, changed during upload,
	// not a regular file, or excluded).
	// +optional
	SkippedFiles int64 `json:"skippedFiles,omitempty"`
	// failedFiles is the number of files whose upload or verification failed (kept in place).
	// +optional
	FailedFiles int64 `json:"failedFiles,omitempty"`
	// errors are the first errors met, one line each.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MaxLength=1024
	Errors []string `json:"errors,omitempty"`
	// conditions: Complete and Failed, with reasons and messages.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// LayerOffload is an order, made by the controller and carried out by the agent on the pod's
// node, to ship a container's hot-path files to S3, verify each object and then delete the
// file. It is garbage-collected after its policy's offload.ttlAfterFinished.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=lo;loff,categories=layerkeeper
// +kubebuilder:selectablefield:JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Pod",type=string,JSONPath=`.spec.podName`
// +kubebuilder:printcolumn:name="Container",type=string,JSONPath=`.spec.containerName`,priority=1
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Uploaded",type=integer,JSONPath=`.status.uploadedBytes`
// +kubebuilder:printcolumn:name="Objects",type=integer,JSONPath=`.status.uploadedObjects`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LayerOffload struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the order.
	// +required
	Spec LayerOffloadSpec `json:"spec"`

	// status is the agent's progress.
	// +optional
	Status LayerOffloadStatus `json:"status,omitempty"`
}

// LayerOffloadList is a list of LayerOffload.
// +kubebuilder:object:root=true
type LayerOffloadList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LayerOffload `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LayerOffload{}, &LayerOffloadList{})
}
