// Package gather reads, from the API server (through the manager's cache), everything the pure
// evaluation needs for a pod: the LayerPolicies selecting it, its node's NodeLayerReport and the
// node-pressure plan of that node. It decides nothing; controllers/evaluation does.
package gather
