package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/layerkeeper/layerkeeper/test/host"
)

// start starts cmd as the leader of a session of its own (so that neither the caller's
// terminal nor its process group signals reach it, and it outlives a command that started
// it), with its output in <dir>/logs/<name>.log, and records its PID and start time.
func (c *Cluster) start(name string, cmd *exec.Cmd) error {
	logPath := c.path("logs", name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p, err := host.Identify(cmd.Process.Pid)
	if err != nil {
		// It exited at once; the PID is reaped below, so nothing is left to record.
		_ = cmd.Wait()
		return fmt.Errorf("%s exited at start:\n%s", name, tail(logPath, 20))
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // reaps it when this process is the one that stops it
		close(exited)
	}()
	c.exited[name] = exited
	c.Components = append(c.Components, Component{Name: name, Process: p, Log: logPath})
	c.logf("started %s (pid %d)", name, p.PID)
	return c.save()
}

// waitFor polls check every 100ms until it returns nil, the component named dies, or timeout
// passes, and reports the last error with the tail of the component's log.
func (c *Cluster) waitFor(ctx context.Context, name, what string, timeout time.Duration, check func(context.Context) error) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		if comp := c.component(name); comp != nil && !comp.Alive() {
			return fmt.Errorf("%s exited while waiting for %s (%v):\n%s", name, what, last, tail(comp.Log, 30))
		}
		select {
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return fmt.Errorf("%s: waiting for %s: %w", name, what, err)
			}
			msg := fmt.Sprintf("%s: %s not reached within %v: %v", name, what, timeout, last)
			if comp := c.component(name); comp != nil {
				msg += "\n" + tail(comp.Log, 30)
			}
			return fmt.Errorf("%s", msg)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// httpOK returns a check that GETs url and wants 200. client may be nil.
func httpOK(client *http.Client, url, token string) func(context.Context) error {
	if client == nil {
		client = http.DefaultClient
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// tlsClient trusts caPEM, or nothing but the connection (self-signed serving certificates of
// the controller manager and the scheduler) when caPEM is nil.
func tlsClient(caPEM []byte) *http.Client {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caPEM == nil {
		cfg.InsecureSkipVerify = true //nolint:gosec // a health check of a loopback server with a self-signed certificate
	} else {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		cfg.RootCAs = pool
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// freePorts returns n distinct TCP ports free on 127.0.0.1 now.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tail returns the last n lines of a file.
func tail(p string, n int) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  | " + strings.Join(lines, "\n  | ")
}

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.log, "%s [cluster] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
