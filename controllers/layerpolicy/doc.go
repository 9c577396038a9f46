// Package layerpolicy reconciles LayerPolicy objects: it validates what the API server cannot
// (selector semantics, the prefix template, the credentials Secret, the node-pressure margin),
// reports the pods a policy covers and their states in its status, and on deletion removes
// everything layerkeeper wrote on the pods and workloads the policy covered.
package layerpolicy
