// Package agent is the node agent's loop: measure every writable layer on the node, join each
// container with the pod bound to the node by its container ID, and write the node's
// NodeLayerReport with server-side apply only when a figure moved, a container came or went,
// or a heartbeat is due. It never decides remediation.
package agent
