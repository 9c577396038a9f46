// Package chart tests the Helm chart (charts/layerkeeper) with the real helm binary and the real
// kube-apiserver: lint, render with default and non-default values and assert on the decoded
// objects, apply every rendered object with a server-side dry run, and prove the least
// privilege of the agent's and the controller's ServiceAccounts by impersonating them.
package chart

import (
	"fmt"
	"github.com/go-logr/logr"
	"os"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	controllerapp "github.com/layerkeeper/layerkeeper/controllers/app"

	"github.com/layerkeeper/layerkeeper/test/framework"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

var (
	apiServer *framework.APIServer
	// admin is a client with full rights (system:masters) that knows CRDs too.
	admin  client.Client
	scheme = newScheme()
)

func newScheme() *runtime.Scheme {
	s := controllerapp.NewScheme()
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	return s
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	logf.SetLogger(logr.Discard())
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
	if admin, err = client.New(apiServer.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// requireAPI returns a client of the API server with full rights (system:masters).
func requireAPI(t *testing.T) client.Client {
	t.Helper()
	if apiServer == nil {
		testenv.Unavailable(t, "envtest assets (%s)", framework.AssetsEnv)
	}
	return admin
}
