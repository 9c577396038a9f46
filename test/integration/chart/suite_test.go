// Package chart tests the Helm chart (charts/layerkeeper) with the real helm binary and the real
// kube-apiserver: lint, render with default and non-default values and assert on the decoded
// objects, apply every rendered object with a server-side dry run, and prove the least
// privilege of the agent's and the controller's ServiceAccounts by impersonating them.
package chart

import (
	"fmt"
	"os"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/test/framework"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

var apiServer *framework.APIServer

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
	defer apiServer.Stop()
	return m.Run()
}

// requireAPI returns a client of the API server with full rights (system:masters).
func requireAPI(t *testing.T) client.Client {
	t.Helper()
	if apiServer == nil {
		testenv.Unavailable(t, "envtest assets (%s)", framework.AssetsEnv)
	}
	return apiServer.Client
}
