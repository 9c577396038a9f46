package cluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	controllerapp "github.com/layerkeeper/layerkeeper/controllers/app"
	"github.com/layerkeeper/layerkeeper/test/images"
)

// DemoNamespace is where Demo runs its scenario.
const DemoNamespace = "airflow"

// Demo installs layerkeeper and runs the seed scenario with a narrated, timestamped view: an
// Airflow-like scheduler filling its writable layer under an Enforce policy, its logs shipped
// to S3, the real Deployment controller rolling it, and a quiet workload left alone. It ends
// with the objects' state and how to look around.
func (c *Cluster) Demo(ctx context.Context, out io.Writer, timeout time.Duration) error {
	ctrllog.SetLogger(logr.Discard())
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "%s [+%5.1fs] %s\n", time.Now().Format("15:04:05"), time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	k, err := client.New(c.RESTConfig(), client.Options{Scheme: controllerapp.NewScheme()})
	if err != nil {
		return err
	}
	// A fresh scenario every time: the namespace is replaced.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: DemoNamespace}}
	if err := k.Delete(ctx, ns); err == nil || !apierrors.IsNotFound(err) {
		for k.Get(ctx, client.ObjectKeyFromObject(ns), &corev1.Namespace{}) == nil {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if err := k.Create(ctx, ns); err != nil {
		return err
	}
	for k.Get(ctx, client.ObjectKey{Namespace: DemoNamespace, Name: "default"}, &corev1.ServiceAccount{}) != nil {
		time.Sleep(200 * time.Millisecond)
	}
	say("installing layerkeeper with helm from charts/layerkeeper (controller Deployment, agent DaemonSet)")
	if err := c.InstallLayerkeeper(ctx, InstallOptions{SecretNamespaces: []string{DemoNamespace}}); err != nil {
		return err
	}
	say("layerkeeper is running; setting up namespace %q, bucket, credentials and policy", DemoNamespace)

	bucket := "airflow-logs"
	if _, err := c.S3Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil &&
		!strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") {
		return err
	}
	if err := k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3-credentials", Namespace: DemoNamespace},
		StringData: map[string]string{v1alpha1.CredentialsKeyAccessKeyID: c.S3.AccessKey, v1alpha1.CredentialsKeySecretAccessKey: c.S3.SecretKey}}); err != nil {
		return err
	}
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	policy := &v1alpha1.LayerPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "scheduler-logs", Namespace: DemoNamespace},
		Spec: v1alpha1.LayerPolicySpec{
			Selector:   metav1.LabelSelector{MatchLabels: map[string]string{"tier": "airflow"}},
			Mode:       v1alpha1.ModeEnforce,
			Thresholds: v1alpha1.Thresholds{Warn: q("256Ki"), Offload: q("512Ki"), Restart: q("3Mi")},
			HotPaths: []v1alpha1.HotPath{{Path: "/opt/airflow/logs", Include: []string{"**/*.log"},
				MinAge: &metav1.Duration{Duration: 3 * time.Second}}},
			Offload: &v1alpha1.Offload{S3: &v1alpha1.S3Target{Bucket: bucket, Endpoint: c.S3.Endpoint, ForcePathStyle: true,
				Prefix: "{{.Namespace}}/{{.Owner}}/{{.Pod}}/{{.Container}}", CredentialsSecretRef: &v1alpha1.SecretReference{Name: "s3-credentials"}}},
			Remediation: v1alpha1.Remediation{Action: v1alpha1.ActionRolloutRestart, Cooldown: &metav1.Duration{Duration: 10 * time.Minute}, MaxConcurrent: 1},
		},
	}
	if err := k.Create(ctx, policy); err != nil {
		return err
	}
	say("LayerPolicy scheduler-logs (Enforce): warn 256Ki, offload 512Ki, restart 3Mi; hot path /opt/airflow/logs/**/*.log older than 3s -> s3://%s", bucket)
	sched := demoDeployment("airflow-scheduler", images.LogWriterImage, "-rate=102400", "-line-size=256", "-rotate-bytes=65536")
	quiet := demoDeployment("quiet", images.QuietImage)
	for _, d := range []*appsv1.Deployment{sched, quiet} {
		if err := k.Create(ctx, d); err != nil {
			return err
		}
	}
	say("Deployments airflow-scheduler (writes 100 KiB/s of numbered log lines, rotating every 64 KiB) and quiet (writes nothing)")

	deadline := time.Now().Add(timeout)
	seenEvents := map[string]bool{}
	lastState := map[string]string{}
	offloadPhase := map[string]string{}
	var firstPod string
	rolled := false
	for time.Now().Before(deadline) && !rolled {
		time.Sleep(2 * time.Second)
		var pods corev1.PodList
		if err := k.List(ctx, &pods, client.InNamespace(DemoNamespace)); err != nil {
			return err
		}
		report := &v1alpha1.NodeLayerReport{}
		_ = k.Get(ctx, client.ObjectKey{Name: c.NodeName}, report)
		sizes := map[string]int64{}
		for _, ct := range report.Status.Containers {
			if ct.Namespace == DemoNamespace {
				sizes[ct.Pod] += ct.Bytes
			}
		}
		var line []string
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning {
				continue
			}
			if strings.HasPrefix(p.Name, "airflow-scheduler") && firstPod == "" {
				firstPod = p.Name
			}
			if strings.HasPrefix(p.Name, "airflow-scheduler") && firstPod != "" && p.Name != firstPod && p.DeletionTimestamp.IsZero() {
				rolled = true
			}
			state := p.Annotations[v1alpha1.AnnotationState]
			if state == "" {
				state = "ok"
			}
			line = append(line, fmt.Sprintf("%s %s [%s]", p.Name, humanBytes(sizes[p.Name]), state))
			if lastState[p.Name] != state {
				if lastState[p.Name] != "" || state != "ok" {
					say("  state of %s: %s -> %s", p.Name, orDash(lastState[p.Name]), state)
				}
				lastState[p.Name] = state
			}
		}
		slices.Sort(line)
		say("pods: %s", strings.Join(line, " | "))
		var los v1alpha1.LayerOffloadList
		if err := k.List(ctx, &los, client.InNamespace(DemoNamespace)); err == nil {
			for _, lo := range los.Items {
				ph := string(lo.Status.Phase)
				if ph == "" {
					ph = "Pending"
				}
				if offloadPhase[lo.Name] != ph {
					offloadPhase[lo.Name] = ph
					say("  LayerOffload %s (%s, %s): %s, %d objects, %d bytes uploaded, %d files deleted",
						lo.Name, lo.Spec.ContainerName, lo.Spec.Reason, ph, lo.Status.UploadedObjects, lo.Status.UploadedBytes, lo.Status.DeletedFiles)
				}
			}
		}
		var evs eventsv1.EventList
		if err := k.List(ctx, &evs, client.InNamespace(DemoNamespace)); err == nil {
			slices.SortFunc(evs.Items, func(a, b eventsv1.Event) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
			for _, ev := range evs.Items {
				if seenEvents[ev.Name] || ev.ReportingController == "" || !strings.Contains(ev.ReportingController, "layerkeeper") {
					continue
				}
				seenEvents[ev.Name] = true
				say("  event %s on %s/%s: %s", ev.Reason, ev.Regarding.Kind, ev.Regarding.Name, cut(ev.Note, 160))
			}
		}
	}
	if !rolled {
		return fmt.Errorf("the scheduler was not rolled within %s", timeout)
	}
	say("the Deployment controller rolled airflow-scheduler: %s is gone, a new pod with a fresh writable layer runs", firstPod)
	time.Sleep(3 * time.Second) // the agent ships the old container's last lines once it has stopped
	objects, bytes := 0, int64(0)
	pg := s3.NewListObjectsV2Paginator(c.S3Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(DemoNamespace + "/airflow-scheduler/" + firstPod + "/")})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			objects++
			bytes += aws.ToInt64(o.Size)
		}
	}
	say("s3://%s/%s/airflow-scheduler/%s/ holds %d objects, %s: the old pod's logs outlived it", bucket, DemoNamespace, firstPod, objects, humanBytes(bytes))

	kubectl := func(args ...string) {
		fmt.Fprintf(out, "\n$ kubectl %s\n", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, c.KubeBinDir+"/kubectl", args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig())
		cmd.Stdout, cmd.Stderr = out, out
		_ = cmd.Run()
	}
	kubectl("get", "layerpolicies,layeroffloads", "-n", DemoNamespace)
	kubectl("get", "nodelayerreports")
	kubectl("get", "deployment", "airflow-scheduler", "-n", DemoNamespace, "-o",
		`jsonpath={range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}`)
	fmt.Fprintf(out, "\nThe cluster stays up. Look around:\n  . %s\n  kubectl get events -n %s\n  kubectl get layeroffloads -n %s -o yaml\n  aws --endpoint-url %s s3 ls --recursive s3://%s   (keys in %s)\nTear it all down: hack/cluster.sh down\n",
		c.EnvFile(), DemoNamespace, DemoNamespace, c.S3.Endpoint, bucket, c.EnvFile())
	return nil
}

func demoDeployment(name, image string, args ...string) *appsv1.Deployment {
	lbls := map[string]string{"app": name}
	tmpl := map[string]string{"app": name, "tier": "airflow"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: DemoNamespace, Labels: lbls},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: tmpl},
				Spec: corev1.PodSpec{
					HostNetwork:                   true,
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					Containers:                    []corev1.Container{{Name: strings.TrimPrefix(name, "airflow-"), Image: image, Args: args, ImagePullPolicy: corev1.PullNever}},
				},
			},
		},
	}
}

func humanBytes(b int64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMi", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.0fKi", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
