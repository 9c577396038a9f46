// Package app is the `layerkeeper agent` and `layerkeeper scan` subcommands: their flags and
// the wiring of discovery, scanning and reporting.
package app

import "errors"

// ErrNotImplemented is returned by paths that are not built yet.
var ErrNotImplemented = errors.New("not implemented yet")
