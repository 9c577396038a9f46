package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/go-logr/logr"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	controllerapp "github.com/layerkeeper/layerkeeper/controllers/app"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery"
	"github.com/layerkeeper/layerkeeper/nodeagent/measure"
	"github.com/layerkeeper/layerkeeper/test/cluster"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// clientFor returns an admin clientset for the cluster.
func clientFor(t *testing.T, c *cluster.Cluster) kubernetes.Interface {
	t.Helper()
	cs, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// newNamespace creates a namespace named after the test, waits for its default service
// account (pods cannot be created before it exists) and deletes it when the test ends.
func newNamespace(t *testing.T, cs kubernetes.Interface, prefix string) string {
	t.Helper()
	ctx := context.Background()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-" + prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting namespace %s: %v", ns.Name, err)
		}
	})
	waitFor(t, 60*time.Second, "the default service account of "+ns.Name, func() error {
		_, err := cs.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	return ns.Name
}

// waitFor polls cond every 200ms until it returns nil, failing the test with its last error
// after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitRolledOut waits until the Deployment's controller has observed its latest spec and it
// runs exactly its replicas, all of the latest template, Ready, no old or terminating pod
// left, and returns those pods.
func waitRolledOut(t *testing.T, cs kubernetes.Interface, d *appsv1.Deployment, timeout time.Duration) []corev1.Pod {
	t.Helper()
	ctx := context.Background()
	var pods []corev1.Pod
	waitFor(t, timeout, "deployment "+d.Namespace+"/"+d.Name+" rolled out", func() error {
		cur, err := cs.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		want := *cur.Spec.Replicas
		st := cur.Status
		if st.ObservedGeneration < cur.Generation || st.UpdatedReplicas != want || st.ReadyReplicas != want || st.AvailableReplicas != want || st.Replicas != want {
			return fmt.Errorf("generation %d observed %d, replicas %d updated %d ready %d available %d (want %d)",
				cur.Generation, st.ObservedGeneration, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, want)
		}
		list, err := cs.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.Set(cur.Spec.Selector.MatchLabels).String()})
		if err != nil {
			return err
		}
		hashes := map[string]bool{}
		for _, p := range list.Items {
			if p.DeletionTimestamp != nil {
				return fmt.Errorf("pod %s still terminating", p.Name)
			}
			if p.Status.Phase != corev1.PodRunning {
				return fmt.Errorf("pod %s is %s", p.Name, p.Status.Phase)
			}
			for _, c := range p.Status.ContainerStatuses {
				if c.ContainerID == "" || c.State.Running == nil {
					return fmt.Errorf("container %s of pod %s not running: %+v", c.Name, p.Name, c.State)
				}
			}
			hashes[p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]] = true
		}
		if len(list.Items) != int(want) || len(hashes) != 1 {
			return fmt.Errorf("%d pods of %d templates, want %d of one", len(list.Items), len(hashes), want)
		}
		pods = list.Items
		return nil
	})
	return pods
}

// containerID returns the runtime's ID of a pod's container ("containerd://<id>" without the
// scheme).
func containerID(t *testing.T, p corev1.Pod, container string) string {
	t.Helper()
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == container {
			id, ok := strings.CutPrefix(c.ContainerID, "containerd://")
			if !ok {
				t.Fatalf("pod %s container %s has ID %q, want containerd://...", p.Name, container, c.ContainerID)
			}
			return id
		}
	}
	t.Fatalf("pod %s has no container %s", p.Name, container)
	return ""
}

// waitLog waits until the container's log (read through the API server, from the kubelet)
// contains s, and returns the log.
func waitLog(t *testing.T, cs kubernetes.Interface, p corev1.Pod, container, s string, timeout time.Duration) string {
	t.Helper()
	var log string
	waitFor(t, timeout, fmt.Sprintf("%q in the log of %s/%s", s, p.Name, container), func() error {
		b, err := cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: container}).DoRaw(context.Background())
		if err != nil {
			return err
		}
		if log = string(b); !strings.Contains(log, s) {
			return fmt.Errorf("log so far:\n%s", log)
		}
		return nil
	})
	return log
}

// measureNode runs one measurement pass of the node agent's scanner over the cluster's
// containerd and returns the containers by ID.
func measureNode(t *testing.T, c *cluster.Cluster) map[string]measure.Container {
	t.Helper()
	m := measure.New(measure.Options{Discovery: discovery.Options{
		ContainerdState: c.ContainerdState,
		Runtimes:        []v1alpha1.Runtime{v1alpha1.RuntimeContainerd},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := m.Measure(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Errors {
		t.Logf("measure: %v", e) // other containerds on the machine may come and go
	}
	out := map[string]measure.Container{}
	for _, mc := range res.Containers {
		out[mc.ID] = mc
	}
	return out
}

// duBytes is `du -sB1` of a directory: its disk usage in bytes, hard links counted once.
func duBytes(t *testing.T, p string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-sB1", p).Output()
	if err != nil {
		t.Fatalf("du -sB1 %s: %v", p, err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatalf("du output %q: %v", out, err)
	}
	return n
}

// installLayerkeeper installs the chart on the cluster for the test (the agent may read
// credentials Secrets in secretNamespaces), uninstalls it when the test ends, and returns a
// client that knows layerkeeper's types.
func installLayerkeeper(t *testing.T, c *cluster.Cluster, secretNamespaces ...string) client.Client {
	t.Helper()
	return installLayerkeeperWith(t, c, cluster.InstallOptions{SecretNamespaces: secretNamespaces})
}

// installLayerkeeperWith is installLayerkeeper with every install option.
func installLayerkeeperWith(t *testing.T, c *cluster.Cluster, o cluster.InstallOptions) client.Client {
	t.Helper()
	if err := c.InstallLayerkeeper(context.Background(), o); err != nil {
		if cluster.IsUnavailable(err) {
			testenv.Unavailable(t, "%v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logLayerkeeper(t, c)
		}
		if err := c.UninstallLayerkeeper(context.Background(), ""); err != nil {
			t.Errorf("uninstalling layerkeeper: %v", err)
		}
	})
	ctrllog.SetLogger(logr.Discard())
	k, err := client.New(c.RESTConfig(), client.Options{Scheme: controllerapp.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// logLayerkeeper logs the end of the agent's and the controller's logs, so that a failure
// seen only in CI's output can be understood.
func logLayerkeeper(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	cs, err := c.Client()
	if err != nil {
		t.Logf("layerkeeper logs: %v", err)
		return
	}
	ctx := context.Background()
	pods, err := cs.CoreV1().Pods(cluster.InstallNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Logf("layerkeeper logs: %v", err)
		return
	}
	tail := int64(60)
	for _, p := range pods.Items {
		for _, ctr := range p.Spec.Containers {
			raw, err := cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: ctr.Name, TailLines: &tail}).DoRaw(ctx)
			if err != nil {
				t.Logf("logs of %s/%s: %v", p.Name, ctr.Name, err)
				continue
			}
			t.Logf("last %d lines of %s/%s:\n%s", tail, p.Name, ctr.Name, raw)
		}
	}
}

// signalContainer sends sig to the main process of a pod's container, found through the
// runtime (CRI ContainerStatus, verbose): the tests drive the logwriter's bursts and clean-ups
// this way, at moments they choose.
func signalContainer(t *testing.T, c *cluster.Cluster, p corev1.Pod, container string, sig syscall.Signal) {
	t.Helper()
	id := containerID(t, p, container)
	rt, done, err := c.CRI()
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatalf("CRI status of %s: %v", id, err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil || info.Pid <= 0 {
		t.Fatalf("CRI status of %s: no pid in %q (%v)", id, st.GetInfo()["info"], err)
	}
	if err := syscall.Kill(info.Pid, sig); err != nil {
		t.Fatalf("signalling pid %d of container %s: %v", info.Pid, id, err)
	}
}

// eventsFor returns the events of a reason recorded on an object, oldest first.
func eventsFor(t *testing.T, cs kubernetes.Interface, ns, kind, name, reason string) []corev1.Event {
	t.Helper()
	list, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.Set{"reason": reason, "involvedObject.kind": kind, "involvedObject.name": name}.String()})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}
