// Command quiet is a workload that never writes to its writable layer: it prints "started" to
// stdout (the container log, which lives outside the layer) and sleeps until SIGTERM or
// SIGINT. As PID 1 of its PID namespace it handles the signals itself.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("started")
	<-sig
}
