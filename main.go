// Command layerkeeper keeps containers' writable layers in check. One binary, three
// subcommands: `controller` (cluster-wide decisions), `agent` (one per node, measures and
// offloads) and `scan` (a one-shot measurement for a person on a node).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	controllerapp "github.com/layerkeeper/layerkeeper/controllers/app"
	agentapp "github.com/layerkeeper/layerkeeper/nodeagent/app"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `layerkeeper keeps containers' writable layers (the overlayfs upperdir) in check.

Usage:
  layerkeeper <command> [flags]

Commands:
  controller   evaluate LayerPolicies against node reports, annotate, set conditions, remediate
  agent        measure every container's writable layer on this node and report it
  scan         measure the writable layers on this host once and print them (no cluster needed)
  version      print the version

Run "layerkeeper <command> --help" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch args[0] {
	case "controller":
		err = controllerapp.Run(ctx, args[1:], version)
	case "agent":
		err = agentapp.RunAgent(ctx, args[1:], version)
	case "scan":
		err = agentapp.RunScan(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "layerkeeper: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "layerkeeper %s: %v\n", args[0], err)
		var ue interface{ UsageError() bool }
		if errors.As(err, &ue) && ue.UsageError() {
			return 2
		}
		return 1
	}
}
