// Package host finds and removes what the test harnesses leave on the machine: mounts under
// a scratch directory, cgroups in every hierarchy, containerd shims serving a given socket,
// and processes, which it only ever signals by a recorded PID checked against the process's
// start time, so that a reused PID is never hit.
package host
