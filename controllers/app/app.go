// Package app is the `layerkeeper controller` subcommand: its flags, logging, and the
// controller-runtime manager that runs every controller package.
package app

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// Options are the controller's flags.
type Options struct {
	MetricsBindAddress      string
	HealthProbeBindAddress  string
	LeaderElect             bool
	LeaderElectionID        string
	LeaderElectionNamespace string
	StaleAfter              time.Duration
	Zap                     zap.Options
}

// NewScheme returns the scheme the controller and its tests use: the built-in kinds plus
// layerkeeper.dev/v1alpha1.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// FlagSet returns the subcommand's flags bound to o.
func (o *Options) FlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("layerkeeper controller", flag.ContinueOnError)
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; \"0\" disables it.")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "Elect a leader so that only one replica acts at a time (set it when running more than one replica).")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", "layerkeeper-controller.layerkeeper.dev", "Name of the Lease used for leader election.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease (default: the pod's own namespace).")
	fs.DurationVar(&o.StaleAfter, "stale-after", 5*time.Minute, "A node report older than this is stale: its figures are shown but never acted on.")
	config.RegisterFlags(fs)
	o.Zap.BindFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: layerkeeper controller [flags]\n\nRuns the layerkeeper controller manager.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// Run parses args and runs the controller manager until ctx is done.
func Run(ctx context.Context, args []string, version string) error {
	o := Options{Zap: zap.Options{Development: false}}
	fs := o.FlagSet()
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.Zap)))
	log := ctrl.Log.WithName("controller")

	cfg, err := config.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        NewScheme(),
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:        o.HealthProbeBindAddress,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := SetupControllers(mgr, o); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	log.Info("starting", "version", version, "leaderElect", o.LeaderElect, "pid", os.Getpid())
	return mgr.Start(ctx)
}

type usageError struct{ error }

func (usageError) UsageError() bool { return true }

// Leader election uses a Lease in the controller's namespace; the namespaced Role for it is
// config/rbac/leader_election_role.yaml.
