// Package evaluation decides, with pure functions over gathered figures, which state each
// selected pod's writable layer is in (ok, warn, offload, restart), why, and which action its
// LayerPolicies ask for now, and whether the remediation safety limits allow that action.
// It has no client, no clock and no I/O: the controllers gather the policies, the node
// reports and the time, call these functions and act on what they return.
package evaluation
