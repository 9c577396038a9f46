package offload

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxKeyLength is S3's limit on an object key, in bytes.
const MaxKeyLength = 1024

// ObjectKey is the key of the object for a file: the rendered prefix, "/", then the file's
// path inside the container without its leading "/". Paths that cannot be a key (not UTF-8,
// control characters, too long) are refused, so the file is kept rather than stored under a
// mangled name.
func ObjectKey(prefix, containerPath string) (string, error) {
	p := strings.TrimPrefix(containerPath, "/")
	key := p
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		key = prefix + "/" + p
	}
	switch {
	case p == "":
		return "", fmt.Errorf("empty path")
	case !utf8.ValidString(key):
		return "", fmt.Errorf("path %q is not valid UTF-8", containerPath)
	case strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", fmt.Errorf("path %q holds control characters", containerPath)
	case len(key) > MaxKeyLength:
		return "", fmt.Errorf("key for %q is %d bytes, S3 allows %d", containerPath, len(key), MaxKeyLength)
	}
	return key, nil
}

// alternateKey is where a file goes when its key already holds different content: the key
// with the first 16 hex digits of the file's SHA-256 appended. It is deterministic, so a
// retried offload finds the object it uploaded before, and it never overwrites an object.
func alternateKey(key, sha256Hex string) string {
	return key + ".sha256-" + sha256Hex[:16]
}
