// Package s3server runs a real S3-compatible server (MinIO, built from source by hack/) on
// 127.0.0.1 for tests: a free port, a scratch data directory, stopped by the PID it started.
package s3server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// BinaryEnv names the MinIO binary (`make test` sets it to what hack/build-tool.sh built).
const BinaryEnv = "LAYERKEEPER_MINIO"

// Region is the region the server answers for.
const Region = "us-east-1"

// Server is one running MinIO.
type Server struct {
	Endpoint  string // http://127.0.0.1:<port>
	AccessKey string
	SecretKey string

	binary  string
	dataDir string
	addr    string
	logPath string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts a server for the test and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv(BinaryEnv)
	if bin == "" {
		testenv.Unavailable(t, "an S3 server binary (%s)", BinaryEnv)
	}
	scratch := t.TempDir()
	s := &Server{
		AccessKey: "layerkeeper-" + randomHex(4),
		SecretKey: randomHex(16),
		binary:    bin,
		dataDir:   filepath.Join(scratch, "data"),
		logPath:   filepath.Join(scratch, "minio.log"),
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s.addr = fmt.Sprintf("127.0.0.1:%d", port)
	s.Endpoint = "http://" + s.addr
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping the S3 server: %v", err)
		}
	})
	return s
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	consolePort, err := freePort()
	if err != nil {
		return err
	}
	cmd := Command(s.binary, s.dataDir, s.addr, fmt.Sprintf("127.0.0.1:%d", consolePort), s.AccessKey, s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.binary, err)
	}
	s.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			s.cmd = nil
			return fmt.Errorf("the S3 server exited at start (%v): %s", err, s.tailLog())
		default:
		}
		resp, err := http.Get(s.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			// Ready, and past the start-up window where it answers an unknown access key
			// with 503 (its IAM not loaded yet) instead of 403.
			if resp.StatusCode == http.StatusOK && s.authReady() {
				go func() { <-exited }()
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	s.cmd = nil
	return fmt.Errorf("the S3 server was not ready within 60s: %s", s.tailLog())
}

// authReady reports whether a request signed with an unknown access key is refused with
// 403, not 503.
func (s *Server) authReady() bool {
	c := s3.New(s3.Options{Region: Region, BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("not-a-key", "not-a-secret-key", "")})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden
}

// Stop kills the server by the PID it was started with and waits until its port is closed.
// The data directory is kept, so Restart serves the same objects.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	pid := s.cmd.Process.Pid
	s.cmd = nil
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond)
		if err != nil {
			return nil
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("port %s still open after killing pid %d", s.addr, pid)
}

// Command returns the command that runs MinIO serving dataDir on addr (its console, which is
// switched off, on consoleAddr) with the given root credentials, answering for Region. HOME
// is dataDir's parent, so MinIO writes nothing outside it.
func Command(binary, dataDir, addr, consoleAddr, accessKey, secretKey string) *exec.Cmd {
	cmd := exec.Command(binary, "server", dataDir, "--quiet", "--address", addr, "--console-address", consoleAddr)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+accessKey,
		"MINIO_ROOT_PASSWORD="+secretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_REGION="+Region,
		"HOME="+filepath.Dir(dataDir),
	)
	return cmd
}

// Restart starts a stopped server again on the same address with the same data.
func (s *Server) Restart() error { return s.start() }

// Client returns an S3 client for the server with its root credentials.
func (s *Server) Client() *s3.Client {
	return NewClient(s.Endpoint, s.AccessKey, s.SecretKey)
}

// NewClient returns an S3 client for a MinIO at endpoint: path-style addressing, Region,
// static credentials.
func NewClient(endpoint, accessKey, secretKey string) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
	})
}

// CreateBucket creates a bucket with a name unique to the test and returns the name.
func (s *Server) CreateBucket(t testing.TB) string {
	t.Helper()
	name := bucketName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	return name
}

func bucketName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	return strings.Trim(name, "-") + "-" + randomHex(4)
}

func (s *Server) tailLog() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
