package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// ModulePath is the import path of the module whose programs this package builds.
const ModulePath = "github.com/layerkeeper/layerkeeper"

// ModuleRoot returns the directory of the layerkeeper module (the one holding go.mod): the
// source tree this package was compiled from, or else the module of the working directory.
func ModuleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if isModuleRoot(root) {
			return filepath.Clean(root), nil
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	if !isModuleRoot(root) {
		return "", fmt.Errorf("the working directory is not inside the %s module (go.mod: %q)", ModulePath, strings.TrimSpace(string(out)))
	}
	return root, nil
}

func isModuleRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module "+ModulePath+"\n"))
}

var (
	buildMu    sync.Mutex
	buildCache = map[string][]byte{}
)

// BuildProgram builds the main package pkg, a directory relative to the module root ("." for
// the layerkeeper binary, "test/images/logwriter") or an absolute one, as a static Linux
// binary for this machine's architecture, and returns the executable. Each package is built
// once per process; Go's build cache makes later processes quick too.
func BuildProgram(ctx context.Context, pkg string, ldflags ...string) ([]byte, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	dir := pkg
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, pkg)
	}
	flags := strings.Join(append([]string{"-s", "-w"}, ldflags...), " ")
	key := dir + "\x00" + flags

	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := buildCache[key]; ok {
		return b, nil
	}
	tmp, err := os.MkdirTemp("", "lk-build")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, filepath.Base(dir))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags="+flags, "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS=-buildvcs=false")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("building %s needs the go command: %w", pkg, err)
		}
		return nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	buildCache[key] = b
	return b, nil
}
