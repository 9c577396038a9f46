//go:build !linux

package scanner

import (
	"context"
	"errors"
	"fmt"
	"time"
)

func runPass(_ context.Context, upperDir string, _ *config, _ *cacheTable, _ bool, _ uint32) (Usage, error) {
	return Usage{}, fmt.Errorf("scan %s: %w: overlayfs upperdirs exist only on Linux", upperDir, errors.ErrUnsupported)
}

func processCPU() time.Duration { return 0 }
