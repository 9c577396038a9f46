// Package enforce tests Enforce mode against a real kube-apiserver: the controllers run in a
// manager with a fake clock; reports and LayerOffload progress are written the way the agent writes them.
package enforce

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	controllerapp "github.com/layerkeeper/layerkeeper/controllers/app"
	"github.com/layerkeeper/layerkeeper/test/framework"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

var (
	apiServer *framework.APIServer
	k8s       client.Client
	fakeClock = clocktesting.NewFakeClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
)

const staleAfter = 5 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	apiServer, err = framework.StartAPIServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if apiServer == nil {
		return m.Run()
	}
	defer apiServer.Stop()
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	mgr, err := ctrl.NewManager(apiServer.Config, ctrl.Options{
		Scheme:                 controllerapp.NewScheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := controllerapp.SetupControllersWithClock(mgr, controllerapp.Options{StaleAfter: staleAfter}, fakeClock); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	k8s = apiServer.Client
	go observeDeployments(ctx, k8s)
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
	}
	return code
}

func requireAPI(t *testing.T) client.Client {
	t.Helper()
	if apiServer == nil {
		testenv.Unavailable(t, "envtest assets (%s)", framework.AssetsEnv)
	}
	return k8s
}
