package framework

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	controllerapp "github.com/layerkeeper/layerkeeper/controllers/app"
)

// StartControllers runs every layerkeeper controller in a manager against the API server,
// with the given clock (tests pass a fake one) and stale-after, until the returned stop is
// called. Controller logs go to stderr at error level.
func (a *APIServer) StartControllers(clk clock.PassiveClock, staleAfter time.Duration) (stop func() error, err error) {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	mgr, err := ctrl.NewManager(a.Config, ctrl.Options{
		Scheme:                 controllerapp.NewScheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return nil, err
	}
	if err := controllerapp.SetupControllersWithClock(mgr, controllerapp.Options{StaleAfter: staleAfter}, clk); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() error {
		cancel()
		if err := <-done; err != nil {
			return fmt.Errorf("manager: %w", err)
		}
		return nil
	}, nil
}
