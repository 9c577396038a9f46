package offload_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/nodeagent/offload"
	"github.com/layerkeeper/layerkeeper/test/s3server"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// awsCLI is Debian's awscli, the baseline (not a pip-installed one earlier in PATH).
const awsCLI = "/usr/bin/aws"

// BenchmarkOffloadVsAWSCLI ships the same files to the same MinIO, in the same run, with the
// executor (files kept: deleteAfterUpload false, so every iteration ships the same set) and
// with `aws s3 cp --recursive`. It reports both wall times and the executor's speed as a
// multiple of awscli's. The executor's time includes what awscli does not do: a HeadObject
// before each upload (no overwrite) and one after (verification).
func BenchmarkOffloadVsAWSCLI(b *testing.B) {
	testenv.RequireRoot(b)
	if _, err := os.Stat(awsCLI); err != nil {
		testenv.Unavailable(b, "Debian's awscli at %s", awsCLI)
	}
	for _, tc := range []struct {
		name  string
		files int
		size  int
	}{
		{"large-4x256MiB", 4, 256 << 20},
		{"small-10000x4KiB", 10000, 4 << 10},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := s3server.Start(b)
			dir := filepath.Join(b.TempDir(), "logs")
			data := bytes.Repeat([]byte("2026-11-25T10:00:00Z INFO scheduler heartbeat, 3 DAGs processed\n"), tc.size/64+1)[:tc.size]
			old := time.Now().Add(-time.Hour)
			for i := range tc.files {
				p := filepath.Join(dir, fmt.Sprintf("d%02d", i%100), fmt.Sprintf("%05d.log", i))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					b.Fatal(err)
				}
				data[0] = byte('a' + i%26) // distinct content per file
				if err := os.WriteFile(p, data, 0o644); err != nil {
					b.Fatal(err)
				}
				_ = os.Chtimes(p, old, old)
			}
			// The container's root is "/" reached through a fake /proc/<pid>/root.
			proc := b.TempDir()
			if err := os.MkdirAll(filepath.Join(proc, "1"), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.Symlink(filepath.Dir(dir), filepath.Join(proc, "1", "root")); err != nil {
				b.Fatal(err)
			}
			root, err := offload.OpenRoot(proc, 1, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer root.Close()
			keep := false
			var ours, theirs time.Duration
			for i := 0; i < b.N; i++ {
				bucketA := fmt.Sprintf("awscli-%d-%d", tc.files, i)
				bucketB := fmt.Sprintf("layerkeeper-%d-%d", tc.files, i)
				for _, bk := range []string{bucketA, bucketB} {
					if _, err := srv.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bk)}); err != nil {
						b.Fatal(err)
					}
				}
				cmd := exec.Command(awsCLI, "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url", srv.Endpoint, dir, "s3://"+bucketA+"/logs")
				cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "AWS_DEFAULT_REGION="+s3server.Region,
					"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
				start := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("awscli: %v\n%s", err, out)
				}
				theirs += time.Since(start)

				cl, err := offload.NewClient(context.Background(), v1alpha1.S3Target{Bucket: bucketB, Endpoint: srv.Endpoint, ForcePathStyle: true,
					Region: s3server.Region}, &offload.Credentials{AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
				if err != nil {
					b.Fatal(err)
				}
				ex := &offload.Executor{Bucket: offload.NewBucket(cl, bucketB, 0)}
				start = time.Now()
				res, err := ex.Run(context.Background(), root, offload.Job{Name: "bench", Node: "bench", Source: "bench", Prefix: "p", Now: time.Now(),
					Paths: []v1alpha1.HotPath{{Path: "/logs", MinAge: &metav1.Duration{}, DeleteAfterUpload: &keep}}})
				ours += time.Since(start)
				if err != nil || res.UploadedObjects != int64(tc.files) {
					b.Fatalf("executor: %+v, %v", res, err)
				}
			}
			total := float64(tc.files*tc.size) * float64(b.N)
			b.ReportMetric(total/ours.Seconds()/(1<<20), "MiB/s")
			b.ReportMetric(total/theirs.Seconds()/(1<<20), "awscli-MiB/s")
			b.ReportMetric(theirs.Seconds()/ours.Seconds(), "x-awscli")
			b.ReportMetric(float64(tc.files*b.N)/ours.Seconds(), "files/s")
			b.ReportMetric(float64(tc.files*b.N)/theirs.Seconds(), "awscli-files/s")
		})
	}
}
