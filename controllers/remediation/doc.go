// Package remediation is Enforce mode: for each pod an Enforce policy wants acted on, it
// orders LayerOffloads from the pod's node agent, and past thresholds.restart rolls the owning
// workload or evicts the pod, within the safety limits of evaluation.CheckRemediation.
package remediation
