// Package enforce tests Enforce mode against a real kube-apiserver: the controllers run in a
// manager with a fake clock; reports and LayerOffload progress are written the way the agent writes them.
package enforce

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	stop, err := apiServer.StartControllers(fakeClock, staleAfter)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	k8s = apiServer.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go observeDeployments(ctx, k8s)
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
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
