//go:build !linux

package scanner

import (
	"context"
	"errors"
	"fmt"
)

func runPass(_ context.Context, upperDir string, _ *config, _ *cacheTable, _ bool, _ uint64) (Usage, error) {
	return Usage{}, fmt.Errorf("scan %s: %w: overlayfs upperdirs exist only on Linux", upperDir, errors.ErrUnsupported)
}
