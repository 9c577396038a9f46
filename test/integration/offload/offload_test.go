package offload

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery"
	"github.com/layerkeeper/layerkeeper/nodeagent/offload"
	ctd "github.com/layerkeeper/layerkeeper/test/engines/containerd"
	"github.com/layerkeeper/layerkeeper/test/framework"
	"github.com/layerkeeper/layerkeeper/test/s3server"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

const (
	logDir = "/opt/airflow/logs/scheduler"
	// The scheduler writes 1,000 numbered 256-byte lines a second and starts a new file every
	// 100 KiB (400 lines).
	rate   = 256_000
	rotate = 400 * 256
)

var pod = ctd.Pod{
	Name: "airflow-scheduler-7d9f8b6c5-x2k4p", Namespace: "data-pipelines", UID: "0b8e6f52-3c1d-4a7e-9f26-d41c8a5e7b93",
	Labels: map[string]string{"component": "scheduler"},
}

// lineNumber is the sequence number that starts every logwriter line.
var lineNumber = regexp.MustCompile(`^(\d+) `)

// TestOffloadFromARealContainerLosesNoLine runs an Airflow-like scheduler in containerd,
// offloads its rotated logs (the agent killed once mid-offload and restarted), then ships
// everything before a restart, stops the container, and checks that the objects in S3 plus the
// files left in the container hold every line the scheduler ever wrote.
func TestOffloadFromARealContainerLosesNoLine(t *testing.T) {
	testenv.RequireRoot(t)
	for _, b := range []string{"containerd", "runc", "ctr"} {
		testenv.RequireBinary(t, b)
	}
	srv := s3server.Start(t)
	bucket := srv.CreateBucket(t)
	api, err := framework.StartAPIServer()
	if err != nil {
		t.Fatal(err)
	}
	if api == nil {
		testenv.Unavailable(t, "envtest assets (%s)", framework.AssetsEnv)
	}
	t.Cleanup(func() { _ = api.Stop() })
	c := ctd.Start(t)
	c.ImportLogWriter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	podID, err := c.RunPodSandbox(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	ctrID, err := c.CreateContainer(ctx, podID, pod, ctd.Container{Name: "scheduler", Image: ctd.LogWriterImage,
		Args: []string{"-dir", logDir, "-rate", strconv.Itoa(rate), "-rotate-bytes", strconv.Itoa(rotate), "-tick", "10ms"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartContainer(ctx, ctrID); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.StopContainer(context.Background(), ctrID, 5) })

	k := api.Client
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(k.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: pod.Namespace}}))
	must(k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3-creds", Namespace: pod.Namespace},
		Data: map[string][]byte{v1alpha1.CredentialsKeyAccessKeyID: []byte(srv.AccessKey), v1alpha1.CredentialsKeySecretAccessKey: []byte(srv.SecretKey)}}))

	prefix := pod.Namespace + "/airflow-scheduler/" + pod.Name + "/scheduler"
	order := func(name string, reason v1alpha1.OffloadReason, ignoreMinAge bool) *v1alpha1.LayerOffload {
		lo := &v1alpha1.LayerOffload{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: pod.Namespace},
			Spec: v1alpha1.LayerOffloadSpec{PolicyName: "scheduler-logs", NodeName: "node-a", PodName: pod.Name, PodUID: pod.UID,
				ContainerName: "scheduler", ContainerID: ctrID, Reason: reason, IgnoreMinAge: ignoreMinAge,
				Paths: []v1alpha1.HotPath{{Path: logDir, Include: []string{"**/*.log"}, MinAge: &metav1.Duration{Duration: 2 * time.Second}}},
				Target: v1alpha1.S3Target{Bucket: bucket, Prefix: prefix, Endpoint: srv.Endpoint, ForcePathStyle: true, Region: s3server.Region,
					CredentialsSecretRef: &v1alpha1.SecretReference{Name: "s3-creds"}}}}
		must(k.Create(ctx, lo))
		return lo
	}
	agent := func() *offload.Reconciler {
		return &offload.Reconciler{Client: k, Secrets: k, Node: "node-a", Clock: clock.RealClock{}, Log: ctrl.Log,
			Discovery: discovery.Options{ContainerdState: c.State, Runtimes: []v1alpha1.Runtime{v1alpha1.RuntimeContainerd}}}
	}
	get := func(name string) *v1alpha1.LayerOffload {
		lo := &v1alpha1.LayerOffload{}
		must(k.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: name}, lo))
		return lo
	}

	// 1. Over the offload threshold: rotated files older than minAge go, the active file stays.
	time.Sleep(6 * time.Second)
	lo := order("threshold", v1alpha1.OffloadReasonThreshold, false)
	if _, err := agent().Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(lo)}); err != nil {
		t.Fatal(err)
	}
	st := get("threshold").Status
	t.Logf("threshold offload: %s, %d objects, %d bytes, %d deleted, %d freed, %d left in place", st.Phase, st.UploadedObjects,
		st.UploadedBytes, st.DeletedFiles, st.FreedBytes, st.SkippedFiles)
	if st.Phase != v1alpha1.OffloadSucceeded || st.UploadedObjects == 0 || st.DeletedFiles != st.UploadedObjects || st.SkippedFiles == 0 {
		t.Fatalf("threshold offload status %+v: want Succeeded, rotated files shipped and deleted, young ones kept", st)
	}

	// 2. The agent dies mid-offload (its context is cancelled once the first files are
	//    uploaded); a new agent resumes the Running offload. Old archives, 192 MiB in all,
	//    make the offload long enough to be interrupted.
	merged := filepath.Join(c.State, "io.containerd.runtime.v2.task", ctd.Namespace, ctrID, "rootfs")
	archives := map[string][32]byte{}
	old := time.Now().Add(-time.Hour)
	for i := range 24 {
		p := filepath.Join(logDir, "archive", fmt.Sprintf("archive-%02d.log", i))
		data := make([]byte, 8<<20)
		_, _ = rand.Read(data)
		must(os.MkdirAll(filepath.Join(merged, filepath.Dir(p)), 0o755))
		must(os.WriteFile(filepath.Join(merged, p), data, 0o644))
		must(os.Chtimes(filepath.Join(merged, p), old, old))
		archives[p] = sha256.Sum256(data)
	}
	time.Sleep(3 * time.Second)
	lo = order("crash", v1alpha1.OffloadReasonThreshold, false)
	crashCtx, crash := context.WithCancel(ctx)
	killer := agent()
	killer.ProgressEvery = 50 * time.Millisecond
	killer.OnProgress = func(r offload.Result) {
		if r.UploadedObjects > 0 {
			crash()
		}
	}
	_, _ = killer.Reconcile(crashCtx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(lo)})
	crash()
	interrupted := get("crash").Status
	t.Logf("after the crash: phase %q, attempts %d, %d objects, %d deleted", interrupted.Phase, interrupted.Attempts,
		interrupted.UploadedObjects, interrupted.DeletedFiles)
	if interrupted.Phase != v1alpha1.OffloadRunning {
		t.Fatalf("the agent was not interrupted mid-offload: %+v", interrupted)
	}
	if _, err := agent().Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(lo)}); err != nil {
		t.Fatal(err)
	}
	resumed := get("crash").Status
	t.Logf("resumed: phase %q, attempts %d, %d objects, %d deleted", resumed.Phase, resumed.Attempts, resumed.UploadedObjects, resumed.DeletedFiles)
	if resumed.Phase != v1alpha1.OffloadSucceeded || resumed.FailedFiles != 0 || resumed.Attempts != 2 {
		t.Fatalf("resumed offload status %+v", resumed)
	}
	for p, sum := range archives {
		if _, err := os.Lstat(filepath.Join(merged, p)); err == nil {
			t.Errorf("%s is still in the container", p)
		}
		key := prefix + p
		out, err := srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		h := sha256.New()
		_, _ = io.Copy(h, out.Body)
		out.Body.Close()
		if [32]byte(h.Sum(nil)) != sum {
			t.Errorf("%s differs from the file", key)
		}
	}
	if keys := listKeys(t, ctx, srv, bucket, prefix+logDir+"/archive/"); len(keys) != len(archives) {
		t.Errorf("%d archive objects, want %d (no duplicates): %q", len(keys), len(archives), keys)
	}

	// 3. Before a restart: every file, however young, then the container stops.
	lo = order("before-restart", v1alpha1.OffloadReasonBeforeRestart, true)
	if _, err := agent().Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(lo)}); err != nil {
		t.Fatal(err)
	}
	before := get("before-restart").Status
	if before.Phase != v1alpha1.OffloadSucceeded {
		t.Fatalf("before-restart offload status %+v", before)
	}
	cs, _ := discovery.Discover(ctx, discovery.Options{ContainerdState: c.State, Runtimes: []v1alpha1.Runtime{v1alpha1.RuntimeContainerd}})
	var upper string
	for _, dc := range cs {
		if dc.ID == ctrID {
			upper = dc.UpperDirPath()
		}
	}
	if upper == "" {
		t.Fatal("container not found by discovery")
	}
	if err := c.StopContainer(ctx, ctrID, 10); err != nil {
		t.Fatal(err)
	}
	out, err := c.ContainerLog(ctx, ctrID)
	must(err)
	reports := regexp.MustCompile(`seq (\d+) bytes`).FindAllStringSubmatch(out, -1)
	if reports == nil {
		t.Fatalf("the scheduler did not report how many lines it wrote:\n%s", out)
	}
	written, _ := strconv.Atoi(reports[len(reports)-1][1]) // its last report, made on SIGTERM

	// The active file, still written to during the before-restart offload, is shipped again
	// once the container has stopped, through the descriptor the agent kept open.
	deadline := time.Now().Add(30 * time.Second)
	for get("before-restart").Status.UploadedObjects == before.UploadedObjects {
		if time.Now().After(deadline) {
			t.Fatalf("the followed active file was not shipped after the container stopped: %+v", get("before-restart").Status)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Every line ever written is in S3 or in the stopped container's files.
	seen := make([]int, written)
	inS3, objects := countObjects(t, ctx, srv, bucket, prefix, seen)
	inFiles, files := countFiles(t, filepath.Join(upper, logDir), seen)
	missing := 0
	for _, n := range seen {
		if n == 0 {
			missing++
		}
	}
	t.Logf("lines written %d: %d in %d objects, %d in %d files left in the container, %d missing", written, inS3, objects, inFiles, files, missing)
	if missing != 0 {
		t.Errorf("%d of %d lines are neither in S3 nor in the container", missing, written)
	}
	if inS3 == 0 || files == 0 {
		t.Errorf("want lines both offloaded and still in the container")
	}
	// S3 alone holds every line: the container's layer can go with the restart.
	inS3Only := make([]int, written)
	countObjects(t, ctx, srv, bucket, prefix, inS3Only)
	missingFromS3 := 0
	for _, n := range inS3Only {
		if n == 0 {
			missingFromS3++
		}
	}
	if missingFromS3 != 0 {
		t.Errorf("%d of %d lines are not in S3 after the followed files were shipped", missingFromS3, written)
	}
}

func listKeys(t *testing.T, ctx context.Context, srv *s3server.Server, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(srv.Client(), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

func countLines(r io.Reader, seen []int) int {
	n := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := lineNumber.FindStringSubmatch(sc.Text()); m != nil {
			if i, err := strconv.Atoi(m[1]); err == nil && i >= 1 && i <= len(seen) {
				seen[i-1]++
				n++
			}
		}
	}
	return n
}

func countObjects(t *testing.T, ctx context.Context, srv *s3server.Server, bucket, prefix string, seen []int) (lines, objects int) {
	t.Helper()
	p := s3.NewListObjectsV2Paginator(srv.Client(), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String(prefix + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			if strings.Contains(aws.ToString(o.Key), "/archive/") {
				continue // random bytes, not log lines
			}
			out, err := srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			lines += countLines(out.Body, seen)
			out.Body.Close()
			objects++
		}
	}
	return lines, objects
}

func countFiles(t *testing.T, dir string, seen []int) (lines, files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), ".log") || strings.Contains(p, "/archive/") {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		lines += countLines(f, seen)
		files++
		return nil
	})
	if err != nil {
		t.Fatal(fmt.Errorf("reading the container's files: %w", err))
	}
	return lines, files
}
