// Command pause is the pod sandbox image's process: it does nothing until SIGTERM or SIGINT.
// As PID 1 of its PID namespace it must handle the signals itself (the kernel ignores
// unhandled ones for PID 1).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
