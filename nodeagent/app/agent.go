package app

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	controllerapp "github.com/layerkeeper/layerkeeper/controllers/app"
	"github.com/layerkeeper/layerkeeper/nodeagent/agent"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery"
	"github.com/layerkeeper/layerkeeper/nodeagent/kubelet"
	"github.com/layerkeeper/layerkeeper/nodeagent/measure"
	"github.com/layerkeeper/layerkeeper/nodeagent/offload"
	"github.com/layerkeeper/layerkeeper/nodeagent/scanner"
)

// AgentOptions are the flags of `layerkeeper agent`.
type AgentOptions struct {
	NodeName           string
	HostRoot, HostProc string
	// Runtimes and ContainerdState narrow discovery (tests point them at a scratch engine).
	Runtimes        []v1alpha1.Runtime
	ContainerdState string
	// ContainerdRoot and ContainerdSocket are --containerd-root and --containerd-socket.
	ContainerdRoot         string
	ContainerdSocket       socketFlag
	Interval, Heartbeat    time.Duration
	ChangeFraction         float64
	MaxContainers          int
	Top                    int
	Workers                int
	CPULimit               float64
	OffloadWorkers         int
	MetricsBindAddress     string
	HealthProbeBindAddress string
	Zap                    zap.Options
}

func (o *AgentOptions) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("layerkeeper agent", flag.ContinueOnError)
	fs.StringVar(&o.NodeName, "node-name", os.Getenv("NODE_NAME"), "Name of this node (default $NODE_NAME); the report is named after it.")
	fs.StringVar(&o.HostRoot, "host-root", "/", "Where the node's / is mounted in the agent's container (e.g. /host).")
	fs.StringVar(&o.HostProc, "host-proc", "", "The node's /proc (default <host-root>/proc; needs hostPID).")
	fs.StringVar(&o.ContainerdRoot, "containerd-root", "", containerdRootUsage)
	fs.Var(&o.ContainerdSocket, "containerd-socket", containerdSocketUsage)
	fs.DurationVar(&o.Interval, "interval", 30*time.Second, "Time between measuring passes.")
	fs.DurationVar(&o.Heartbeat, "heartbeat", 5*time.Minute, "Longest time between report writes when no figure moves.")
	fs.Float64Var(&o.ChangeFraction, "change-fraction", 0.05, "Relative move of a container's bytes or a filesystem's free space that makes a report write.")
	fs.IntVar(&o.MaxContainers, "max-containers", agent.MaxContainers, "Most containers listed in the report (largest first; counts and totals cover all).")
	fs.IntVar(&o.Top, "top", 5, "Largest directories reported per container (besides policies' hot paths).")
	fs.IntVar(&o.Workers, "workers", 2, "Containers scanned at once.")
	fs.Float64Var(&o.CPULimit, "cpu-limit", 0.5, "CPU cores each container's scan may use (0: no limit).")
	fs.IntVar(&o.OffloadWorkers, "offload-workers", offload.DefaultWorkers, "Files of one LayerOffload shipped to S3 at once.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; \"0\" disables it.")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	config.RegisterFlags(fs)
	o.Zap.BindFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: layerkeeper agent [flags]\n\nMeasures every container's writable layer on this node and writes the node's NodeLayerReport.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// RunAgent runs the node agent until ctx is done.
func RunAgent(ctx context.Context, args []string, version string) error {
	o := AgentOptions{}
	fs := o.flagSet()
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	if o.NodeName == "" {
		return usageError{fmt.Errorf("--node-name (or $NODE_NAME) is required")}
	}
	if o.Interval <= 0 || o.Heartbeat <= 0 || o.ChangeFraction < 0 || o.CPULimit < 0 {
		return usageError{fmt.Errorf("--interval and --heartbeat must be positive, --change-fraction and --cpu-limit not negative")}
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.Zap)))
	log := ctrl.Log.WithName("agent").WithValues("node", o.NodeName)

	cfg, err := config.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 controllerapp.NewScheme(),
		Metrics:                metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress: o.HealthProbeBindAddress,
		// The agent reads its own report and its Node one by one (it may only get them), and
		// Secrets never through a cache.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{
			&v1alpha1.NodeLayerReport{}, &corev1.Node{}, &corev1.Secret{}}}},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:            {Field: fields.OneTermEqualSelector("spec.nodeName", o.NodeName)},
			&v1alpha1.LayerOffload{}: {Field: fields.OneTermEqualSelector(offload.NodeNameField, o.NodeName)},
		}},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Pod{}, agent.PodNodeNameField, func(obj client.Object) []string {
		return []string{obj.(*corev1.Pod).Spec.NodeName}
	}); err != nil {
		return fmt.Errorf("indexing pods by node: %w", err)
	}
	a := NewAgent(mgr.GetClient(), o, version, clock.RealClock{})
	a.Log = log
	if err := mgr.Add(a); err != nil {
		return err
	}
	if err := NewOffloadReconciler(mgr.GetClient(), mgr.GetAPIReader(), o, clock.RealClock{}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the offload executor: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	log.Info("starting", "version", version, "interval", o.Interval, "hostRoot", o.HostRoot)
	return mgr.Start(ctx)
}

// discovery returns the discovery options the flags give.
func (o AgentOptions) discovery() discovery.Options {
	d := discovery.Options{HostRoot: o.HostRoot, HostProc: o.HostProc, Runtimes: o.Runtimes,
		ContainerdState: o.ContainerdState, ContainerdRoot: o.ContainerdRoot}
	o.ContainerdSocket.apply(&d)
	return d
}

// NewOffloadReconciler wires the executor of the LayerOffloads addressed to this node; secrets
// reads credentials Secrets uncached.
func NewOffloadReconciler(c client.Client, secrets client.Reader, o AgentOptions, clk clock.Clock) *offload.Reconciler {
	return &offload.Reconciler{
		Client: c, Secrets: secrets, Node: o.NodeName, Clock: clk, Workers: o.OffloadWorkers,
		Discovery: o.discovery(),
		Log:       ctrl.Log.WithName("offload"),
	}
}

// NewAgent wires an Agent from the flags; c must read pods of the node and policies.
func NewAgent(c client.Client, o AgentOptions, version string, clk clock.PassiveClock) *agent.Agent {
	m := measure.New(measure.Options{
		Now:         clk.Now,
		Discovery:   o.discovery(),
		Scan:        scanner.Options{TopN: o.Top, CPULimit: o.CPULimit},
		Workers:     o.Workers,
		HotPathsFor: agent.HotPathsFor(c),
	})
	hostProc := o.HostProc
	if hostProc == "" {
		hostProc = filepath.Join(o.HostRoot, "proc")
	}
	return &agent.Agent{
		Kubelet: func() kubelet.Result {
			return kubelet.Read(kubelet.Options{HostProc: hostProc, HostRoot: o.HostRoot, NodeName: o.NodeName})
		},
		Node: o.NodeName, Client: c, Measurer: m, Clock: clk, Interval: o.Interval,
		Build: agent.BuildOptions{MaxContainers: o.MaxContainers, AgentVersion: version},
		Write: agent.WriteOptions{ChangeFraction: o.ChangeFraction, Heartbeat: o.Heartbeat},
		Log:   ctrl.Log.WithName("agent"),
	}
}
