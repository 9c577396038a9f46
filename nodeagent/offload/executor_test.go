package offload_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/nodeagent/offload"
	"github.com/layerkeeper/layerkeeper/test/s3server"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

var old = time.Now().Add(-time.Hour)

// container is an overlay mounted like a container's root filesystem, with a fake /proc whose
// <pid>/root leads to it, the way the host's /proc/<pid>/root leads to a container's root.
type container struct {
	lower, upper, merged, proc string
	pid                        int
}

// newContainer mounts the overlay; image holds files of the lower (image) layer.
func newContainer(t *testing.T, image ...string) *container {
	t.Helper()
	testenv.RequireRoot(t)
	dir := t.TempDir()
	c := &container{pid: 4242}
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c.lower, c.upper, c.merged = filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "merged")
	for _, p := range image {
		writeFile(t, filepath.Join(c.lower, p), []byte("image\n"), old)
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", c.lower, c.upper, filepath.Join(dir, "work"))
	if err := unix.Mount("overlay", c.merged, "overlay", 0, opts); err != nil {
		testenv.Unavailable(t, "an overlay mount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(c.merged, unix.MNT_DETACH) })
	c.proc = filepath.Join(dir, "proc")
	if err := os.MkdirAll(filepath.Join(c.proc, fmt.Sprint(c.pid)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(c.merged, filepath.Join(c.proc, fmt.Sprint(c.pid), "root")); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *container) write(t *testing.T, p string, data []byte, mtime time.Time) {
	writeFile(t, filepath.Join(c.merged, p), data, mtime)
}

func (c *container) exists(p string) bool {
	_, err := os.Lstat(filepath.Join(c.merged, p))
	return err == nil
}

func (c *container) root(t *testing.T) *offload.Root {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(c.merged, &st); err != nil {
		t.Fatal(err)
	}
	r, err := offload.OpenRoot(c.proc, c.pid, st.Dev)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func writeFile(t *testing.T, p string, data []byte, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func job(prefix string, paths ...v1alpha1.HotPath) offload.Job {
	return offload.Job{Name: "ns/offload-1", Node: "node-a", Source: "ns/web-1/app", Prefix: prefix, Paths: paths, Now: time.Now()}
}

func hotPath(p string, include ...string) v1alpha1.HotPath {
	return v1alpha1.HotPath{Path: p, Include: include, MinAge: &metav1.Duration{Duration: 10 * time.Minute}}
}

func bucket(t *testing.T, srv *s3server.Server, name string) *offload.Bucket {
	t.Helper()
	c, err := offload.NewClient(context.Background(), v1alpha1.S3Target{Bucket: name, Endpoint: srv.Endpoint, ForcePathStyle: true,
		Region: s3server.Region}, &offload.Credentials{AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return offload.NewBucket(c, name, 0)
}

func getObject(t *testing.T, srv *s3server.Server, b, key string) ([]byte, map[string]string) {
	t.Helper()
	out, err := srv.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: &b, Key: &key})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data, out.Metadata
}

func listKeys(t *testing.T, srv *s3server.Server, b string) []string {
	t.Helper()
	out, err := srv.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &b})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

const logs = "/opt/airflow/logs/scheduler"

func TestOffloadShipsVerifiesAndDeletes(t *testing.T) {
	// An image file under the hot path: deleting it leaves a whiteout and frees nothing.
	c := newContainer(t, logs+"/from-image.log")
	srv := s3server.Start(t)
	b := srv.CreateBucket(t)

	small := []byte("1 2026-11-25T10:00:00Z scheduler heartbeat\n")
	large := randomBytes(t, 21<<20+12345) // multipart: two parts of 16 MiB
	c.write(t, logs+"/2026-11-25/1.log", small, old)
	c.write(t, logs+"/2026-11-25/empty.log", nil, old)
	c.write(t, logs+"/2026-11-25/big.log", large, old)
	c.write(t, logs+"/2026-11-25/current.log", []byte("still written\n"), time.Now())
	c.write(t, logs+"/2026-11-25/notes.txt", []byte("not a log\n"), old)
	// A secret on the host and a symlink to it in the hot path: never shipped.
	secret := filepath.Join(t.TempDir(), "host-secret")
	writeFile(t, secret, []byte("host secret\n"), old)
	if err := os.Symlink(secret, filepath.Join(c.merged, logs, "2026-11-25/leak.log")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(c.merged, logs, "2026-11-25/pipe.log"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A volume mounted under the hot path: its files are not in the writable layer.
	vol := filepath.Join(c.merged, logs, "volume")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", vol, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(vol, unix.MNT_DETACH) })
	writeFile(t, filepath.Join(vol, "on-volume.log"), []byte("volume\n"), old)

	ex := &offload.Executor{Bucket: bucket(t, srv, b)}
	j := job("ns/web/web-1/app", hotPath(logs, "**/*.log"))
	j.UpperDir = c.upper
	res, err := ex.Run(context.Background(), c.root(t), j)
	if err != nil {
		t.Fatalf("Run: %v (result %+v)", err, res)
	}
	t.Logf("result: %+v", res)

	for name, want := range map[string][]byte{"2026-11-25/1.log": small, "2026-11-25/empty.log": {}, "2026-11-25/big.log": large,
		"from-image.log": []byte("image\n")} {
		got, meta := getObject(t, srv, b, "ns/web/web-1/app"+logs+"/"+name)
		if !bytes.Equal(got, want) {
			t.Errorf("object for %s: %d bytes, not identical to the %d bytes of the file", name, len(got), len(want))
		}
		if meta[offload.MetaSource] == "" || meta[offload.MetaNode] != "node-a" || meta[offload.MetaOffload] != "ns/offload-1" {
			t.Errorf("object for %s: metadata %v does not name its source", name, meta)
		}
		if c.exists(logs + "/" + name) {
			t.Errorf("%s was shipped and verified but not deleted", name)
		}
	}
	for _, kept := range []string{"2026-11-25/current.log", "2026-11-25/notes.txt", "2026-11-25/leak.log", "2026-11-25/pipe.log"} {
		if !c.exists(logs + "/" + kept) {
			t.Errorf("%s was deleted; it must stay", kept)
		}
	}
	keys := listKeys(t, srv, b)
	for _, k := range keys {
		if strings.Contains(k, "leak") || strings.Contains(k, "pipe") || strings.Contains(k, "current") || strings.Contains(k, "volume") {
			t.Errorf("object %s must not exist", k)
		}
	}
	if len(keys) != 4 {
		t.Errorf("bucket holds %d objects %q, want 4", len(keys), keys)
	}
	if data, err := os.ReadFile(secret); err != nil || string(data) != "host secret\n" {
		t.Errorf("the host file behind the symlink was touched: %q, %v", data, err)
	}
	if res.UploadedObjects != 4 || res.UploadedBytes != int64(len(small)+len(large)+6) || res.DeletedFiles != 4 || res.FailedFiles != 0 {
		t.Errorf("result %+v: want 4 objects of %d bytes, 4 deleted, none failed", res, len(small)+len(large)+6)
	}
	// Freed: the upper-dir files' allocation, not the image file (a whiteout replaces it).
	if res.FreedBytes < int64(len(large)) || res.FreedBytes > int64(len(large))+64<<10 {
		t.Errorf("freed %d bytes, want about %d", res.FreedBytes, len(large))
	}
	if res.SkippedFiles < 3 { // current.log (too young), leak.log (symlink), pipe.log (FIFO)
		t.Errorf("skipped %d files, want at least 3", res.SkippedFiles)
	}

	// A second run finds nothing more to ship and changes nothing.
	res2, err := ex.Run(context.Background(), c.root(t), j)
	if err != nil || res2.UploadedObjects != 0 || res2.DeletedFiles != 0 {
		t.Errorf("second run: %+v, %v; want nothing done", res2, err)
	}
	if n := len(listKeys(t, srv, b)); n != 4 {
		t.Errorf("after the second run the bucket holds %d objects, want 4", n)
	}
}

func TestOffloadResumesWithoutDuplicatesOrLoss(t *testing.T) {
	c := newContainer(t)
	srv := s3server.Start(t)
	b := srv.CreateBucket(t)
	data := randomBytes(t, 1000)
	c.write(t, logs+"/a.log", data, old)
	c.write(t, logs+"/b.log", []byte("bee\n"), old)

	ex := &offload.Executor{Bucket: bucket(t, srv, b)}
	// A crash after the upload of a.log and before its deletion: the object is there, the
	// file too.
	archive := hotPath(logs)
	keep := false
	archive.DeleteAfterUpload = &keep
	if _, err := ex.Run(context.Background(), c.root(t), job("p", archive)); err != nil {
		t.Fatal(err)
	}
	if !c.exists(logs+"/a.log") || len(listKeys(t, srv, b)) != 2 {
		t.Fatalf("archive-only run must keep the files and upload both")
	}
	// The name a.log reused by different content (rotated by the application) must not
	// overwrite the first object.
	c.write(t, logs+"/b.log", []byte("another bee\n"), old)

	res, err := ex.Run(context.Background(), c.root(t), job("p", hotPath(logs)))
	if err != nil {
		t.Fatal(err)
	}
	if res.UploadedObjects != 1 || res.PresentObjects != 1 || res.DeletedFiles != 2 {
		t.Errorf("resumed run: %+v; want 1 upload (the new b.log), 1 object found present (a.log) and 2 deletions", res)
	}
	if got, _ := getObject(t, srv, b, "p"+logs+"/a.log"); !bytes.Equal(got, data) {
		t.Errorf("a.log's object changed")
	}
	if got, _ := getObject(t, srv, b, "p"+logs+"/b.log"); string(got) != "bee\n" {
		t.Errorf("b.log's first object was overwritten: %q", got)
	}
	keys := listKeys(t, srv, b)
	if len(keys) != 3 {
		t.Fatalf("keys %q, want a.log, b.log and b.log's alternate", keys)
	}
	var alt string
	for _, k := range keys {
		if strings.HasPrefix(k, "p"+logs+"/b.log.sha256-") {
			alt = k
		}
	}
	if got, _ := getObject(t, srv, b, alt); string(got) != "another bee\n" {
		t.Errorf("alternate object %q holds %q", alt, got)
	}
}

func TestOffloadBucketProblemsKeepFiles(t *testing.T) {
	c := newContainer(t)
	srv := s3server.Start(t)
	b := srv.CreateBucket(t)
	c.write(t, logs+"/a.log", []byte("a\n"), old)

	cases := map[string]struct {
		bucket string
		creds  *offload.Credentials
		want   string
	}{
		"missing bucket":    {bucket: "no-such-bucket", creds: &offload.Credentials{AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}, want: "does not exist"},
		"wrong credentials": {bucket: b, creds: &offload.Credentials{AccessKeyID: "nobody", SecretAccessKey: "wrong-secret-key"}, want: "credentials refused"},
		"unreachable endpoint": {bucket: b, creds: &offload.Credentials{AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey},
			want: "unreachable"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			endpoint := srv.Endpoint
			if name == "unreachable endpoint" {
				endpoint = "http://127.0.0.1:1"
			}
			cl, err := offload.NewClient(context.Background(), v1alpha1.S3Target{Bucket: tc.bucket, Endpoint: endpoint, ForcePathStyle: true,
				Region: s3server.Region}, tc.creds)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := (&offload.Executor{Bucket: offload.NewBucket(cl, tc.bucket, 0)}).Run(ctx, c.root(t), job("p", hotPath(logs)))
			var te *offload.TargetError
			if !errors.As(err, &te) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v; want a TargetError saying %q", err, tc.want)
			}
			if res.UploadedObjects != 0 || res.DeletedFiles != 0 || !c.exists(logs+"/a.log") {
				t.Errorf("result %+v; the file must be kept", res)
			}
		})
	}
}

// hookTransport lets a test act when a request for a key starts.
type hookTransport struct {
	next   http.RoundTripper
	onPart func(r *http.Request)
}

func (h hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if h.onPart != nil {
		h.onPart(r)
	}
	return h.next.RoundTrip(r)
}

func hookedBucket(srv *s3server.Server, name string, hook func(*http.Request)) *offload.Bucket {
	c := s3.New(s3.Options{
		Region: s3server.Region, BaseEndpoint: aws.String(srv.Endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		HTTPClient:                 &http.Client{Transport: hookTransport{next: http.DefaultTransport, onPart: hook}},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		RetryMaxAttempts:           2,
	})
	return offload.NewBucket(c, name, 1)
}

func TestOffloadServerStoppedMidUploadThenResumed(t *testing.T) {
	c := newContainer(t)
	srv := s3server.Start(t)
	b := srv.CreateBucket(t)
	large := randomBytes(t, 40<<20)
	c.write(t, logs+"/big.log", large, old)

	var parts atomic.Int32
	hook := func(r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") != "" && parts.Add(1) == 2 {
			if err := srv.Stop(); err != nil {
				t.Errorf("stopping the server: %v", err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := (&offload.Executor{Bucket: hookedBucket(srv, b, hook)}).Run(ctx, c.root(t), job("p", hotPath(logs)))
	if err == nil {
		t.Fatalf("Run with the server stopped mid-upload succeeded: %+v", res)
	}
	t.Logf("interrupted: %v", err)
	if !c.exists(logs+"/big.log") || res.DeletedFiles != 0 {
		t.Fatalf("the file was deleted though its upload never completed: %+v", res)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	res, err = (&offload.Executor{Bucket: bucket(t, srv, b)}).Run(ctx, c.root(t), job("p", hotPath(logs)))
	if err != nil || res.DeletedFiles != 1 {
		t.Fatalf("resumed run: %+v, %v", res, err)
	}
	if got, _ := getObject(t, srv, b, "p"+logs+"/big.log"); !bytes.Equal(got, large) {
		t.Errorf("object differs from the file after the resumed upload")
	}
}

func TestOffloadFileGrowingDuringUploadIsKept(t *testing.T) {
	c := newContainer(t)
	srv := s3server.Start(t)
	b := srv.CreateBucket(t)
	first := randomBytes(t, 20<<20)
	c.write(t, logs+"/growing.log", first, old)
	var once atomic.Bool
	hook := func(r *http.Request) {
		if r.Method == http.MethodPut && once.CompareAndSwap(false, true) {
			f, err := os.OpenFile(filepath.Join(c.merged, logs, "growing.log"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.WriteString("a line written during the upload\n")
			f.Close()
		}
	}
	j := job("p", hotPath(logs))
	j.IgnoreMinAge = true
	res, err := (&offload.Executor{Bucket: hookedBucket(srv, b, hook)}).Run(context.Background(), c.root(t), j)
	if err != nil {
		t.Fatal(err)
	}
	if !c.exists(logs+"/growing.log") || res.DeletedFiles != 0 {
		t.Fatalf("a file that grew during its upload was deleted: %+v", res)
	}
	if got, _ := getObject(t, srv, b, "p"+logs+"/growing.log"); !bytes.Equal(got, first) {
		t.Errorf("object holds %d bytes, want the %d the file had when listed", len(got), len(first))
	}
	if !strings.Contains(strings.Join(res.Errors, "\n"), "changed while it was uploaded") {
		t.Errorf("errors %q do not say the file changed", res.Errors)
	}
}

// TestBeforeRestartKeepsAndFollowsTheActiveLog: before a restart every file is shipped
// however young, but one written within minAge (the logger's current file) stays in place and
// is followed even when no byte changed during its upload, since the application may write
// to it again at any moment; an old one is deleted once verified.
func TestBeforeRestartKeepsAndFollowsTheActiveLog(t *testing.T) {
	c := newContainer(t)
	srv := s3server.Start(t)
	b := srv.CreateBucket(t)
	c.write(t, logs+"/scheduler.000001.log", []byte("1 rotated\n"), old)
	c.write(t, logs+"/scheduler.000002.log", []byte("2 current\n"), time.Now())
	j := job("p", hotPath(logs))
	j.IgnoreMinAge, j.FollowActive = true, true
	res, err := (&offload.Executor{Bucket: bucket(t, srv, b)}).Run(context.Background(), c.root(t), j)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, f := range res.Followed {
			f.File.Close()
		}
	}()
	if res.UploadedObjects != 2 || res.DeletedFiles != 1 || c.exists(logs+"/scheduler.000001.log") || !c.exists(logs+"/scheduler.000002.log") {
		t.Fatalf("result %+v: want both shipped, the rotated one deleted and the current one kept", res)
	}
	if len(res.Followed) != 1 || res.Followed[0].Path != logs+"/scheduler.000002.log" {
		t.Fatalf("followed %+v, want the current log", res.Followed)
	}
	if got, _ := getObject(t, srv, b, "p"+logs+"/scheduler.000002.log"); string(got) != "2 current\n" {
		t.Errorf("object of the current log holds %q", got)
	}
}

func TestOffloadHotPathThroughSymlinkRefused(t *testing.T) {
	c := newContainer(t)
	srv := s3server.Start(t)
	b := srv.CreateBucket(t)
	hostDir := t.TempDir()
	writeFile(t, filepath.Join(hostDir, "host.log"), []byte("host\n"), old)
	if err := os.MkdirAll(filepath.Join(c.merged, "/opt/airflow"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The hot path itself is a symlink to a host directory.
	if err := os.Symlink(hostDir, filepath.Join(c.merged, "/opt/airflow/logs2")); err != nil {
		t.Fatal(err)
	}
	res, err := (&offload.Executor{Bucket: bucket(t, srv, b)}).Run(context.Background(), c.root(t), job("p", hotPath("/opt/airflow/logs2")))
	if err != nil {
		t.Fatal(err)
	}
	if res.UploadedObjects != 0 || len(listKeys(t, srv, b)) != 0 {
		t.Errorf("files behind a symlinked hot path were shipped: %+v", res)
	}
	if !strings.Contains(strings.Join(res.Errors, "\n"), "not a directory in the container") {
		t.Errorf("errors %q do not explain the refusal", res.Errors)
	}
	if _, err := os.Stat(filepath.Join(hostDir, "host.log")); err != nil {
		t.Errorf("host file touched: %v", err)
	}
}
