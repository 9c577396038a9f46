// Package testenv lets tests state what they need from the machine (root, a binary, a
// kernel feature). Outside strict mode a missing need skips the test; in strict mode
// (LAYERKEEPER_TEST_STRICT=1, which `make test` and CI set) it fails it, so a CI run can never
// pass by skipping the tests that use the real parts.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// StrictEnv is the environment variable that turns missing needs into failures.
const StrictEnv = "LAYERKEEPER_TEST_STRICT"

// Strict reports whether missing needs fail tests instead of skipping them.
func Strict() bool { return os.Getenv(StrictEnv) == "1" }

// Unavailable skips the test, or fails it in strict mode, saying what is missing.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf("required by this test but unavailable ("+StrictEnv+"=1): "+format, args...)
	}
	t.Skipf("skipped, unavailable: "+format, args...)
}

// RequireRoot needs the test to run as root (overlay mounts, whiteouts, container engines).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "root")
	}
}

// RequireBinary needs an executable on PATH and returns its path.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "binary %q on PATH", name)
	}
	return p
}

// RequireEnv needs an environment variable (for example the path of a built tool) and
// returns its value.
func RequireEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Unavailable(t, "environment variable %s", name)
	}
	return v
}
