// Package measure is one measuring pass over a node: discover every container's writable
// layer, scan each with a bounded worker pool (keeping one incremental scanner per layer
// between passes), add deleted-but-open bytes and the node filesystems, and smooth growth
// rates across passes. The agent and `layerkeeper scan` share it.
package measure
