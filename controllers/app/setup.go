package app

import (
	"errors"

	ctrl "sigs.k8s.io/controller-runtime"
)

// ErrNotImplemented is returned while the controllers that evaluate policies are not built
// yet: the manager refuses to start rather than run and pretend to enforce anything.
var ErrNotImplemented = errors.New("the policy controllers are not implemented yet; refusing to start a manager that would do nothing")

// SetupControllers registers every controller with the manager.
func SetupControllers(mgr ctrl.Manager, o Options) error {
	return ErrNotImplemented
}
