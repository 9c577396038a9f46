package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/test/builders"
)

// TestCrashLoopingPreviousInstanceReported: a container that writes 512 KiB and exits with
// status 3 is restarted by the kubelet, which keeps the previous instance (and its writable
// layer) until its container GC. The agent, installed by the chart, reports that instance in
// the NodeLayerReport as Stopped, with the pod's identity and exactly `du -sB1` of its upper
// directory, beside the running one.
func TestCrashLoopingPreviousInstanceReported(t *testing.T) {
	c := requireCluster(t)
	ctx := context.Background()
	cs := clientFor(t, c)
	ns := newNamespace(t, cs, "crashloop")
	k := installLayerkeeper(t, c)

	dep := builders.MakeWorkload("crasher", ns).
		LogWriter("scheduler", "-rate=1048576", "-line-size=256", "-lines=2048", "-exit=3").Obj()
	if err := k.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	// A previous instance (the pod's lastState.terminated once restarted) in the report. The
	// container keeps crashing, and the kubelet keeps only the latest dead instance, so each
	// poll looks at the instance the pod names now.
	var pod corev1.Pod
	var prevID string
	var entry v1alpha1.ContainerLayer
	waitFor(t, 3*time.Minute, "a previous instance of the crashing container in the NodeLayerReport", func() error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=crasher"})
		if err != nil {
			return err
		}
		prevID = ""
		for _, p := range pods.Items {
			for _, st := range p.Status.ContainerStatuses {
				if term := st.LastTerminationState.Terminated; st.RestartCount > 0 && term != nil && term.ContainerID != "" {
					if term.ExitCode != 3 {
						t.Fatalf("previous instance exited %d, want 3", term.ExitCode)
					}
					pod, prevID = p, strings.TrimPrefix(term.ContainerID, "containerd://")
				}
			}
		}
		if prevID == "" {
			return fmt.Errorf("no restart yet")
		}
		rep := &v1alpha1.NodeLayerReport{}
		if err := k.Get(ctx, client.ObjectKey{Name: c.NodeName}, rep); err != nil {
			return err
		}
		var ids []string
		for _, cl := range rep.Status.Containers {
			// The pod's status can name the previous instance before the agent's next scan
			// has seen it stop: wait for that scan.
			if cl.ContainerID == prevID && cl.State == v1alpha1.ContainerStopped {
				entry = cl
				return nil
			}
			ids = append(ids, short(cl.ContainerID)+"/"+string(cl.State))
		}
		return fmt.Errorf("previous instance %s not among %v", short(prevID), ids)
	})
	if entry.State != v1alpha1.ContainerStopped {
		t.Errorf("previous instance state %s, want %s", entry.State, v1alpha1.ContainerStopped)
	}
	if entry.Namespace != ns || entry.Pod != pod.Name || entry.PodUID != string(pod.UID) || entry.Container != "scheduler" {
		t.Errorf("previous instance identity %s/%s (uid %s) container %s, want %s/%s (uid %s) container scheduler",
			entry.Namespace, entry.Pod, entry.PodUID, entry.Container, ns, pod.Name, pod.UID)
	}
	if entry.UpperDir == "" {
		t.Fatalf("previous instance has no upperDir: %+v", entry)
	}
	// Stopped, its layer no longer changes: the report's figure is du's, exactly (the kubelet
	// may remove the instance at its container GC; then there is nothing left to compare).
	du := duBytes(t, entry.UpperDir)
	if entry.Bytes != du {
		t.Errorf("previous instance: reported %d bytes, du -sB1 %s = %d", entry.Bytes, entry.UpperDir, du)
	}
	if entry.Bytes < 2048*256 {
		t.Errorf("previous instance: %d bytes, less than the %d its logs take", entry.Bytes, 2048*256)
	}
	t.Logf("previous instance %s: Stopped, %d bytes = du -sB1 of %s", short(prevID), entry.Bytes, entry.UpperDir)
}
