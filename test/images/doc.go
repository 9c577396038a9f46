// Package images builds the container images the tests run, from this repository's source,
// without a registry or a container builder: each is a static Go binary in a single layer,
// written as a docker-archive (the `docker save` format) that `ctr images import`,
// `docker load` and `podman load` read offline.
//
// The programs live beside this file: pause (the pod sandbox), logwriter (an Airflow-like
// scheduler filling its writable layer with numbered log lines) and quiet (writes nothing).
// The layerkeeper image is the repository's own binary.
package images
