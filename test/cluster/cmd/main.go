// Command cmd drives test/cluster by hand: a single-node Kubernetes cluster on 127.0.0.1 in a
// scratch directory. hack/cluster.sh builds the binaries it needs and runs it.
//
//	go run ./test/cluster/cmd up|demo|down|status|env [--dir DIR] [--kube-bin DIR] [--minio PATH]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/layerkeeper/layerkeeper/test/cluster"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	verb := os.Args[1]
	fs := flag.NewFlagSet("cluster "+verb, flag.ExitOnError)
	var o cluster.Options
	fs.StringVar(&o.Dir, "dir", "", "scratch directory (default <repo>/_output/cluster)")
	fs.StringVar(&o.KubeBinDir, "kube-bin", "", "directory with kube-apiserver, kube-controller-manager, kube-scheduler, kubelet (default $"+cluster.KubeBinEnv+")")
	fs.StringVar(&o.MinIO, "minio", "", "MinIO binary (default $"+cluster.MinIOEnv+")")
	_ = fs.Parse(os.Args[2:])
	o.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, verb, o); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, verb string, o cluster.Options) error {
	switch verb {
	case "up":
		c, err := cluster.Up(ctx, o)
		if err != nil {
			return err
		}
		fmt.Print(c.Status(ctx))
		if c.Reused {
			fmt.Println("already up; nothing started")
		} else {
			fmt.Printf("started in %.1fs\n", c.StartupSeconds)
		}
		fmt.Printf("use it:       . %s   (kubectl get nodes)\ntear it down: hack/cluster.sh down\n", c.EnvFile())
		return nil
	case "demo":
		c, err := cluster.Up(ctx, o)
		if err != nil {
			return err
		}
		if c.Reused {
			fmt.Println("the cluster is already up; reusing it")
		} else {
			fmt.Printf("cluster up in %.1fs (etcd, kube-apiserver, controller-manager, scheduler, containerd, kubelet, MinIO on 127.0.0.1)\n", c.StartupSeconds)
		}
		return c.Demo(ctx, os.Stdout, 5*time.Minute)
	case "down":
		return cluster.Down(ctx, dirOrDefault(o), os.Stderr)
	case "status", "env":
		c, err := cluster.Load(dirOrDefault(o))
		if err != nil {
			return fmt.Errorf("%w (is it up? hack/cluster.sh up)", err)
		}
		if verb == "env" {
			b, err := os.ReadFile(c.EnvFile())
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(b)
			return err
		}
		fmt.Print(c.Status(ctx))
		if err := c.Healthy(ctx); err != nil {
			return errors.New("not healthy")
		}
		return nil
	default:
		usage()
		return nil
	}
}

func dirOrDefault(o cluster.Options) string {
	if o.Dir != "" {
		return o.Dir
	}
	return cluster.DefaultDir()
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: cmd up|demo|down|status|env [--dir DIR] [--kube-bin DIR] [--minio PATH]")
	os.Exit(2)
}
