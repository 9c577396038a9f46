package e2e

import (
	"bufio"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/test/builders"
	"github.com/layerkeeper/layerkeeper/test/cluster"
)

// TestSeedScenario is the scenario layerkeeper exists for, on the real cluster with the chart
// installed as an admin would: an Airflow-like scheduler Deployment fills its writable layer
// with rotated logs under an Enforce policy. Past offload its rotated logs go to S3 and leave
// the container; past restart every remaining line is shipped and the real Deployment
// controller rolls it. Every line it wrote is in S3, none missing; the quiet Deployment the
// same policy selects is never touched.
func TestSeedScenario(t *testing.T) {
	c := requireCluster(t)
	ctx := context.Background()
	cs := clientFor(t, c)
	ns := newNamespace(t, cs, "seed")
	k := installLayerkeeper(t, c, ns)
	start := time.Now()
	elapsed := func() string { return time.Since(start).Truncate(100 * time.Millisecond).String() }

	bucket := "airflow-logs-" + strings.TrimPrefix(ns, "e2e-seed-")
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
	policy := builders.MakeLayerPolicy("scheduler-logs", ns).MatchLabels("tier", "airflow").Mode(v1alpha1.ModeEnforce).
		Thresholds("256Ki", "512Ki", "3Mi").HotPath("/opt/airflow/logs", "**/*.log").MinAge(3*time.Second).
		S3(bucket, c.S3.Endpoint).CredentialsSecret("s3-credentials").
		Remediation(v1alpha1.ActionRolloutRestart, 10*time.Minute, 1).Obj()
	must(k.Create(ctx, policy))

	sched := builders.MakeWorkload("airflow-scheduler", ns).
		LogWriter("scheduler", "-rate=102400", "-line-size=256", "-rotate-bytes=65536", "-report=500ms").Obj()
	quiet := builders.MakeWorkload("quiet", ns).Quiet("quiet").Obj()
	for _, dep := range []*appsv1.Deployment{sched, quiet} {
		dep.Spec.Template.Labels["tier"] = "airflow"
		must(k.Create(ctx, dep))
	}
	first := waitRolledOut(t, cs, sched, 120*time.Second)[0]
	quietPods := waitRolledOut(t, cs, quiet, 120*time.Second)
	t.Logf("%s: scheduler %s and quiet pod running", elapsed(), first.Name)

	// The scheduler's own count of the lines it wrote, read from its log while it runs.
	lastSeq := 0
	seqRe := regexp.MustCompile(`seq (\d+) bytes`)
	readSeq := func() {
		raw, err := cs.CoreV1().Pods(ns).GetLogs(first.Name, &corev1.PodLogOptions{Container: "scheduler"}).DoRaw(ctx)
		if err != nil {
			return
		}
		if m := seqRe.FindAllStringSubmatch(string(raw), -1); m != nil {
			if n, _ := strconv.Atoi(m[len(m)-1][1]); n > lastSeq {
				lastSeq = n
			}
		}
	}

	// Audit signals first: the condition on the Deployment.
	waitFor(t, 90*time.Second, "WritableLayerWithinLimits=False on the scheduler Deployment", func() error {
		readSeq()
		d := &appsv1.Deployment{}
		if err := k.Get(ctx, client.ObjectKeyFromObject(sched), d); err != nil {
			return err
		}
		for _, cond := range d.Status.Conditions {
			if string(cond.Type) == v1alpha1.ConditionWritableLayerWithinLimits && cond.Status == corev1.ConditionFalse {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", d.Status.Conditions)
	})
	t.Logf("%s: Deployment condition WritableLayerWithinLimits=False", elapsed())

	// Past offload: an offload of the rotated logs succeeds and frees the layer.
	var threshold v1alpha1.LayerOffload
	waitFor(t, 120*time.Second, "a Succeeded threshold offload", func() error {
		readSeq()
		var list v1alpha1.LayerOffloadList
		if err := k.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, lo := range list.Items {
			if lo.Spec.Reason == v1alpha1.OffloadReasonThreshold && lo.Status.Phase == v1alpha1.OffloadSucceeded && lo.Status.DeletedFiles > 0 {
				threshold = lo
				return nil
			}
			if lo.Status.Phase == v1alpha1.OffloadFailed {
				return fmt.Errorf("offload %s failed: %v", lo.Name, lo.Status.Errors)
			}
		}
		return fmt.Errorf("%d offloads", len(list.Items))
	})
	t.Logf("%s: threshold offload %s: %d objects, %d bytes, %d files deleted, %d bytes freed", elapsed(), threshold.Name,
		threshold.Status.UploadedObjects, threshold.Status.UploadedBytes, threshold.Status.DeletedFiles, threshold.Status.FreedBytes)

	// Past restart: a before-restart offload, then the real Deployment controller rolls it.
	var next []corev1.Pod
	waitFor(t, 180*time.Second, "the scheduler rolled onto a new pod", func() error {
		readSeq()
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=airflow-scheduler"})
		if err != nil {
			return err
		}
		next = nil
		for _, p := range pods.Items {
			if p.Name != first.Name && p.Status.Phase == corev1.PodRunning {
				next = append(next, p)
			}
		}
		if len(next) == 0 {
			return fmt.Errorf("still on %s", first.Name)
		}
		return nil
	})
	t.Logf("%s: rolled: %s replaced %s (container %s -> %s)", elapsed(), next[0].Name, first.Name,
		short(containerID(t, first, "scheduler")), short(containerID(t, next[0], "scheduler")))
	d := &appsv1.Deployment{}
	must(k.Get(ctx, client.ObjectKeyFromObject(sched), d))
	if d.Spec.Template.Annotations[v1alpha1.AnnotationRestartedAt] == "" || !strings.Contains(d.Spec.Template.Annotations[v1alpha1.AnnotationRestartReason], "scheduler-logs") {
		t.Errorf("template annotations %v: want restartedAt and the restart reason", d.Spec.Template.Annotations)
	}

	// The old container is gone: its final lines were shipped through the files the agent
	// held open. Every line from 1 to the last is in S3, exactly.
	prefix := fmt.Sprintf("%s/airflow-scheduler/%s/scheduler/", ns, first.Name)
	var seen map[int]int
	var objects int
	waitFor(t, 60*time.Second, "every line of the old scheduler in S3", func() error {
		seen, objects = linesIn(t, ctx, c, bucket, prefix)
		highest := 0
		for n := range seen {
			highest = max(highest, n)
		}
		if highest < lastSeq {
			return fmt.Errorf("highest line in S3 %d, the scheduler reported %d", highest, lastSeq)
		}
		for i := 1; i <= highest; i++ {
			if seen[i] == 0 {
				return fmt.Errorf("line %d of %d missing from %d objects", i, highest, objects)
			}
		}
		return nil
	})
	highest := 0
	for n := range seen {
		highest = max(highest, n)
	}
	t.Logf("%s: %d lines of the old scheduler (it last reported %d) all in %d objects, 0 missing", elapsed(), highest, lastSeq, objects)

	// The quiet workload: never offloaded, never restarted, still its first pod.
	var list v1alpha1.LayerOffloadList
	must(k.List(ctx, &list, client.InNamespace(ns)))
	for _, lo := range list.Items {
		if strings.HasPrefix(lo.Spec.PodName, "quiet") {
			t.Errorf("the quiet pod got offload %s", lo.Name)
		}
	}
	qd := &appsv1.Deployment{}
	must(k.Get(ctx, client.ObjectKeyFromObject(quiet), qd))
	if qd.Spec.Template.Annotations[v1alpha1.AnnotationRestartedAt] != "" {
		t.Errorf("the quiet Deployment was restarted")
	}
	if _, err := cs.CoreV1().Pods(ns).Get(ctx, quietPods[0].Name, metav1.GetOptions{}); err != nil {
		t.Errorf("the quiet pod is gone: %v", err)
	}
	p := &v1alpha1.LayerPolicy{}
	must(k.Get(ctx, client.ObjectKeyFromObject(policy), p))
	if r := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); r == nil || r.Status != metav1.ConditionTrue {
		t.Errorf("policy Ready = %+v", r)
	}
	t.Logf("policy lastActions: %+v", p.Status.LastActions)

	// The new pod writes on and is back over restart within the 10-minute cooldown: the
	// restart is held, and its logs go on being shipped at the offload cadence.
	pod := next[0]
	waitFor(t, 120*time.Second, "the new pod over restart", func() error {
		cur, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if st := cur.Annotations[v1alpha1.AnnotationState]; st != string(v1alpha1.StateRestart) {
			return fmt.Errorf("state %q", st)
		}
		return nil
	})
	t.Logf("%s: %s over restart within its Deployment's cooldown", elapsed(), pod.Name)
	ordered := map[string]bool{}
	must(k.List(ctx, &list, client.InNamespace(ns)))
	for _, lo := range list.Items {
		ordered[lo.Name] = true
	}
	waitFor(t, 90*time.Second, "an offload of the new pod while its restart is held", func() error {
		if err := k.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, lo := range list.Items {
			if ordered[lo.Name] || lo.Spec.PodUID != string(pod.UID) {
				continue
			}
			if lo.Status.Phase == v1alpha1.OffloadSucceeded && lo.Status.UploadedObjects > 0 {
				t.Logf("%s: held restart, offload %s (%s): %d objects, %d bytes freed", elapsed(), lo.Name, lo.Spec.Reason,
					lo.Status.UploadedObjects, lo.Status.FreedBytes)
				return nil
			}
		}
		return fmt.Errorf("no new offload of %s has shipped anything", pod.Name)
	})
	must(k.Get(ctx, client.ObjectKeyFromObject(sched), d))
	if n := d.Annotations[v1alpha1.AnnotationRemediationCount]; n != "1" {
		t.Errorf("remediation count %q within the cooldown, want 1", n)
	}
}

var lineRe = regexp.MustCompile(`^(\d+) `)

// linesIn counts the numbered lines of the objects under prefix.
func linesIn(t *testing.T, ctx context.Context, c *cluster.Cluster, bucket, prefix string) (map[int]int, int) {
	t.Helper()
	seen := map[int]int{}
	objects := 0
	s3c := c.S3Client()
	pg := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out.Body)
			for sc.Scan() {
				if m := lineRe.FindStringSubmatch(sc.Text()); m != nil {
					n, _ := strconv.Atoi(m[1])
					seen[n]++
				}
			}
			out.Body.Close()
			objects++
		}
	}
	return seen, objects
}

func short(id string) string {
	if i := strings.Index(id, "://"); i >= 0 {
		id = id[i+3:]
	}
	return id[:min(12, len(id))]
}
