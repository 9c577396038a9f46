// Package podstate keeps the layerkeeper.dev annotations of every selected pod in step with
// its evaluation, and records an event when a pod crosses a threshold either way. It is the
// per-pod view app teams see with `kubectl describe pod`.
package podstate
