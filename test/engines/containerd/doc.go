// Package containerd runs Debian's containerd 1.6 with runc and its CRI plugin for a test,
// entirely in a scratch directory (root, state, unix sockets, runc root, CNI config, pod logs),
// with no TCP listener off loopback, and talks to it the way a kubelet does: over the CRI gRPC
// API with locally built images that are imported, never pulled.
//
// When the test ends the harness removes every pod sandbox and container through CRI, stops
// containerd by its PID, kills what is left in the harness's own cgroup parent, unmounts
// everything under the scratch directory, removes the cgroups it created in every hierarchy,
// and reports anything it could not clean as a test error.
package containerd
