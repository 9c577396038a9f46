package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/layerkeeper/layerkeeper/test/cluster"
	"github.com/layerkeeper/layerkeeper/test/images"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// Environment variables of this package.
const (
	// KubeconfigEnv names the kubeconfig of a cluster hack/cluster.sh started, to test
	// against it instead of starting one (its directory must hold the cluster's state); a
	// relative path is taken from the repository's root.
	KubeconfigEnv = "LAYERKEEPER_E2E_KUBECONFIG"
	// KeepEnv=1 leaves the cluster this package started running after the tests.
	KeepEnv = "LAYERKEEPER_E2E_KEEP"
)

var (
	// testCluster is the cluster under test; clusterErr says why there is none.
	testCluster *cluster.Cluster
	clusterErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		clusterErr = errShort
		return m.Run()
	}
	ctx := context.Background()
	root, err := images.ModuleRoot()
	if err != nil {
		clusterErr = err
		return m.Run()
	}
	if kc := os.Getenv(KubeconfigEnv); kc != "" {
		// go test runs in the package directory; a relative path is the repository's.
		if !filepath.IsAbs(kc) {
			kc = filepath.Join(root, kc)
		}
		testCluster, clusterErr = cluster.Load(filepath.Dir(kc))
		if clusterErr == nil {
			clusterErr = testCluster.Healthy(ctx)
		}
		if clusterErr == nil {
			// The cluster may have been started from older code: test this checkout's.
			clusterErr = testCluster.RefreshImages(ctx, images.LogWriter, images.Quiet, images.Layerkeeper)
		}
		if clusterErr != nil {
			clusterErr = fmt.Errorf("the cluster of %s=%s: %w", KubeconfigEnv, kc, clusterErr)
			testCluster = nil
		}
		return m.Run()
	}

	// An interrupt during start-up cancels it (Up tears down what it started); during the
	// tests it tears the cluster down and exits.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	keep := os.Getenv(KeepEnv) == "1"
	up := make(chan *cluster.Cluster, 1)
	go func() {
		s := <-sig
		cancel()
		c := <-up
		if c == nil {
			return // start-up was interrupted: Up tore down what it had started
		}
		if !keep {
			fmt.Fprintf(os.Stderr, "e2e: %v: tearing the cluster down\n", s)
			_ = c.Down(context.Background())
		}
		os.Exit(1)
	}()

	started := time.Now()
	testCluster, clusterErr = cluster.Up(ctx, cluster.Options{Dir: filepath.Join(root, "_output", "e2e"), Log: os.Stderr})
	up <- testCluster
	if clusterErr != nil {
		fmt.Fprintf(os.Stderr, "e2e: no cluster: %v\n", clusterErr)
		if ctx.Err() != nil {
			return 1
		}
		return m.Run()
	}
	fmt.Fprintf(os.Stderr, "e2e: cluster up in %.1fs (%s)\n", time.Since(started).Seconds(), testCluster.Dir)
	if keep {
		defer fmt.Fprintf(os.Stderr, "e2e: %s=1: the cluster stays up: . %s; tear it down with LK_CLUSTER_DIR=%s hack/cluster.sh down\n",
			KeepEnv, testCluster.EnvFile(), testCluster.Dir)
		return m.Run()
	}
	code := m.Run()
	if err := testCluster.Down(context.WithoutCancel(ctx)); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: tearing the cluster down: %v\n", err)
		return 1
	}
	return code
}

var errShort = errors.New("-short: no end-to-end tests")

// requireCluster returns the cluster under test, or skips the test (fails it in strict mode)
// when this machine cannot run one, or fails it when the cluster did not start.
func requireCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	switch {
	case testCluster != nil:
		return testCluster
	case errors.Is(clusterErr, errShort):
		t.Skip(errShort.Error())
	case cluster.IsUnavailable(clusterErr):
		testenv.Unavailable(t, "%v", clusterErr)
	default:
		t.Fatalf("the end-to-end cluster did not start: %v", clusterErr)
	}
	return nil
}
