// Package offload tests the agent's offload executor end to end against the real parts: a
// containerd container writing numbered log lines, the real API server holding the
// LayerOffload and the credentials Secret, and a real S3 server.
package offload
