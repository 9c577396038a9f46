// Package offload looks after the LayerOffloads the remediation controller orders once their
// agent has finished them: it tells the pod (and the policy's readers) what happened with an
// event, and garbage-collects them after the policy's ttlAfterFinished, keeping a bounded
// history per policy.
package offload
