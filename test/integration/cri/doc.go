// Package cri tests the node agent's discovery and measurement against pods that a real
// containerd 1.6 runs through its CRI API, created exactly as a kubelet creates them, and
// checks the figures against `du` and containerd's own writable-layer statistics.
package cri
