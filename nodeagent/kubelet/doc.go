// Package kubelet learns the node's kubelet hard eviction thresholds for the filesystem
// signals without any API permission: it finds the kubelet's process in the host's /proc,
// reads its command line and the configuration files it names (through the process's own
// root, as the kubelet sees them), and combines flags, the --config file, its --config-dir
// drop-ins and the kubelet's defaults the way the kubelet does (cmd/kubelet/app/server.go,
// checked against Kubernetes 1.37). Parsing and merging are pure functions; Read does the
// reading and never fails: what it cannot read, it reports with the kubelet's defaults and a
// message.
package kubelet
