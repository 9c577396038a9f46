// Package scanner measures a container's writable layer, its overlayfs upperdir on the host,
// exactly and safely even though the content is hostile: bytes as `du` counts them, inodes,
// whiteouts, the directories that carry the bytes and exact figures for chosen hot paths.
// Its Scanner makes repeated measurements of the same upperdir cheap by re-reading only what
// changed, within a bounded CPU, memory and file-descriptor budget.
package scanner
