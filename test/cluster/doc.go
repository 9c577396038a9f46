// Package cluster runs a real single-node Kubernetes cluster on this machine for end-to-end
// tests and the demo: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd
// with runc, a kubelet and an S3 server (MinIO), every one of them listening on 127.0.0.1 only
// (free ports) and keeping its files in one scratch directory. Images are built from this
// repository (test/images) and imported into containerd; nothing is pulled, so pods use
// imagePullPolicy: Never, and hostNetwork: true (the only CNI network is loopback). The node
// is named 127.0.0.1, which is also its InternalIP.
//
// Up starts it and waits for the node to be Ready; it records the PID and start time of every
// process it started in <dir>/state.json, writes <dir>/kubeconfig and <dir>/env, and is a
// no-op on a healthy cluster. Down stops by those PIDs only, removes the pods through CRI,
// unmounts everything under the directory, removes the cgroups (all under one root of the
// cluster's own), the kubelet's /var/log/containers links, the iptables chains it created and
// restores the sysctls the kubelet changed, then removes the directory.
//
// `go run ./test/cluster/cmd up|down|status` (hack/cluster.sh) drives it by hand.
package cluster
