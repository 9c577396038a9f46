// Package offload carries out LayerOffloads on the agent's node: it walks a container's hot
// paths through the container's own view (/proc/<pid>/root, resolved with openat2 so no
// symlink or mount can lead outside), uploads the selected files to S3 with a checksum,
// verifies each object and only then deletes the file.
package offload
