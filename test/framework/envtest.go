package framework

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	controllerapp "github.com/layerkeeper/layerkeeper/controllers/app"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// AssetsEnv names the directory holding kube-apiserver, etcd and kubectl for envtest
// (`make test` sets it to what hack/envtest-assets.sh prints).
const AssetsEnv = "KUBEBUILDER_ASSETS"

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// APIServer is a running kube-apiserver + etcd with layerkeeper's CRDs installed.
type APIServer struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
}

// StartAPIServer starts envtest. It is meant for TestMain: on a machine without the assets it
// returns (nil, nil) outside strict mode, so the package's API tests skip; in strict mode it
// returns an error.
func StartAPIServer() (*APIServer, error) {
	assets := os.Getenv(AssetsEnv)
	if assets == "" {
		if testenv.Strict() {
			return nil, fmt.Errorf("%s is not set; run the tests through `make test`", AssetsEnv)
		}
		return nil, nil
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: controllerapp.NewScheme()})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return &APIServer{Env: env, Config: cfg, Client: c}, nil
}

// Stop stops the API server and etcd.
func (a *APIServer) Stop() error {
	if a == nil {
		return nil
	}
	return a.Env.Stop()
}
