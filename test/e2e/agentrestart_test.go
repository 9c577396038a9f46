package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/test/builders"
	"github.com/layerkeeper/layerkeeper/test/cluster"
)

// agentSelector selects the chart's agent pods.
const agentSelector = "app.kubernetes.io/component=agent"

// TestAgentReplacedMidOffload: a scheduler writes 16 MiB of logs in 4 KiB files at once; the
// Enforce policy's offload ships them. While the offload runs (objects already in the bucket)
// the agent pod is deleted. The DaemonSet's replacement resumes the same LayerOffload and
// finishes it: every line the scheduler wrote is in S3 or still in its container, none
// missing, and no object was written twice under another name.
func TestAgentReplacedMidOffload(t *testing.T) {
	c := requireCluster(t)
	ctx := context.Background()
	cs := clientFor(t, c)
	ns := newNamespace(t, cs, "agentgone")
	k := installLayerkeeper(t, c, ns)

	bucket := "logs-" + strings.TrimPrefix(ns, "e2e-agentgone-")
	if _, err := c.S3Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3-credentials", Namespace: ns},
		StringData: map[string]string{v1alpha1.CredentialsKeyAccessKeyID: c.S3.AccessKey, v1alpha1.CredentialsKeySecretAccessKey: c.S3.SecretKey}}))
	must(k.Create(ctx, builders.MakeLayerPolicy("ship", ns).MatchLabels("app", "scheduler").Mode(v1alpha1.ModeEnforce).
		Thresholds("512Ki", "1Mi", "").HotPath("/opt/airflow/logs", "**/*.log").MinAge(2*time.Second).
		S3(bucket, c.S3.Endpoint).CredentialsSecret("s3-credentials").Obj()))
	dep := builders.MakeWorkload("scheduler", ns).
		LogWriter("scheduler", "-rate=0", "-burst-bytes=16777216", "-rotate-bytes=4096", "-line-size=256", "-report=1h").Obj()
	must(k.Create(ctx, dep))
	pod := waitRolledOut(t, cs, dep, 120*time.Second)[0]
	waitLog(t, cs, pod, "scheduler", "started", 30*time.Second)
	signalContainer(t, c, pod, "scheduler", syscall.SIGUSR1)
	m := regexp.MustCompile(`burst \d+ seq (\d+)`).FindStringSubmatch(waitLog(t, cs, pod, "scheduler", "burst ", 30*time.Second))
	if m == nil {
		t.Fatal("no burst line in the scheduler's log")
	}
	lastSeq, _ := strconv.Atoi(m[1])
	start := time.Now()

	// Mid-offload: Running, and objects already in the bucket.
	prefix := fmt.Sprintf("%s/scheduler/%s/scheduler/", ns, pod.Name)
	var lo v1alpha1.LayerOffload
	var before int
	waitFor(t, 120*time.Second, "an offload running with objects in the bucket", func() error {
		var list v1alpha1.LayerOffloadList
		if err := k.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, o := range list.Items {
			if o.Status.Phase != v1alpha1.OffloadRunning {
				if o.Status.Phase == v1alpha1.OffloadFailed {
					t.Fatalf("offload %s failed: %v", o.Name, o.Status.Errors)
				}
				// Pending, or Succeeded before it could be caught mid-way: ordered during the
				// burst, it shipped only the files already older than minAge (or none). The
				// next offload ships the rest, thousands of files, long enough to catch.
				continue
			}
			out, err := c.S3Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
			if err != nil {
				return err
			}
			if n := int(aws.ToInt32(out.KeyCount)); n > 0 {
				lo, before = o, n
				return nil
			}
		}
		return fmt.Errorf("%d offloads, none running with objects", len(list.Items))
	})
	old := agentPod(t, cs)
	must(cs.CoreV1().Pods(cluster.InstallNamespace).Delete(ctx, old.Name, metav1.DeleteOptions{}))
	t.Logf("%.1fs: offload %s running (attempt %d, %s objects in the bucket): deleted agent pod %s",
		time.Since(start).Seconds(), lo.Name, lo.Status.Attempts, atLeast(before), old.Name)

	waitFor(t, 120*time.Second, "a replacement agent pod Ready", func() error {
		p := agentPod(t, cs)
		if p.UID == old.UID {
			return fmt.Errorf("still %s", p.Name)
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("%s not Ready", p.Name)
	})
	t.Logf("%.1fs: replacement agent Ready", time.Since(start).Seconds())
	waitFor(t, 5*time.Minute, "the offload finished by the replacement", func() error {
		must(k.Get(ctx, client.ObjectKeyFromObject(&lo), &lo))
		switch lo.Status.Phase {
		case v1alpha1.OffloadSucceeded:
			return nil
		case v1alpha1.OffloadFailed:
			t.Fatalf("offload %s failed: %v", lo.Name, lo.Status.Errors)
		}
		return fmt.Errorf("phase %s, %d objects", lo.Status.Phase, lo.Status.UploadedObjects)
	})
	t.Logf("%.1fs: offload %s Succeeded on attempt %d: %d objects, %d files deleted, %d bytes freed", time.Since(start).Seconds(),
		lo.Name, lo.Status.Attempts, lo.Status.UploadedObjects, lo.Status.DeletedFiles, lo.Status.FreedBytes)
	if cond := meta.FindStatusCondition(lo.Status.Conditions, v1alpha1.ConditionComplete); cond != nil {
		t.Logf("Complete: %s", cond.Message)
	}
	if lo.Status.Attempts < 2 {
		t.Errorf("offload finished on attempt %d: the replacement agent did not resume it", lo.Status.Attempts)
	}

	// Every line is in S3 or in the container; none twice under another object name.
	inS3, objects := linesIn(t, ctx, c, bucket, prefix)
	id := containerID(t, pod, "scheduler")
	layer, ok := measureNode(t, c)[id]
	if !ok {
		t.Fatalf("the scheduler's container %s is not on the node any more", id)
	}
	inLayer, files := linesUnder(t, filepath.Join(layer.UpperDir, "opt", "airflow", "logs"))
	missing, both := 0, 0
	for i := 1; i <= lastSeq; i++ {
		switch {
		case inS3[i] == 0 && inLayer[i] == 0:
			if missing < 5 {
				t.Errorf("line %d is neither in S3 nor in the container", i)
			}
			missing++
		case inS3[i] > 0 && inLayer[i] > 0:
			both++
		}
		if inS3[i] > 1 {
			t.Errorf("line %d is in S3 %d times", i, inS3[i])
		}
	}
	alternates := 0
	pg := s3.NewListObjectsV2Paginator(c.S3Client(), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		must(err)
		for _, o := range page.Contents {
			if strings.Contains(aws.ToString(o.Key), ".sha256-") {
				alternates++
			}
		}
	}
	if alternates > 0 {
		t.Errorf("%d objects were written under an alternate name: a resumed upload did not recognise its own object", alternates)
	}
	t.Logf("%d lines written: %d missing; %d objects in S3, %d files left in the container (%d lines in both)",
		lastSeq, missing, objects, files, both)
	if missing > 0 {
		t.Errorf("%d of %d lines lost", missing, lastSeq)
	}
}

// agentPod returns the (one) agent pod of the cluster's node.
func agentPod(t *testing.T, cs kubernetes.Interface) corev1.Pod {
	t.Helper()
	var p corev1.Pod
	waitFor(t, 60*time.Second, "the agent pod", func() error {
		list, err := cs.CoreV1().Pods(cluster.InstallNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: agentSelector})
		if err != nil {
			return err
		}
		var live []corev1.Pod
		for _, q := range list.Items {
			if q.DeletionTimestamp == nil {
				live = append(live, q)
			}
		}
		if len(live) != 1 {
			return fmt.Errorf("%d agent pods", len(live))
		}
		p = live[0]
		return nil
	})
	return p
}

// linesUnder counts the numbered lines of the regular files under dir (read from the host,
// through the container's upper directory) and returns them with the number of files.
func linesUnder(t *testing.T, dir string) (map[int]int, int) {
	t.Helper()
	seen, files := map[int]int{}, 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || d.Name() == ".seq" {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		files++
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if m := lineRe.FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.Atoi(m[1])
				seen[n]++
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen, files
}

func atLeast(n int) string {
	if n >= 1000 {
		return "1000 or more"
	}
	return strconv.Itoa(n)
}
