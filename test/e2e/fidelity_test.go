package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/test/builders"
	"github.com/layerkeeper/layerkeeper/test/cluster"
	"github.com/layerkeeper/layerkeeper/test/testenv"
)

// TestMeasurementFidelity runs an Airflow-like scheduler Deployment (two pods writing rotated
// logs for a few seconds, then idling) and a quiet one, and checks, for every pod, that the
// node agent's scanner measures exactly `du -sB1` of the container's upper directory and
// agrees within 1% with the kubelet's own figure, the Summary API's rootfs.usedBytes.
func TestMeasurementFidelity(t *testing.T) {
	c := requireCluster(t)
	testenv.RequireBinary(t, "du")
	cs := clientFor(t, c)
	ns := newNamespace(t, cs, "fidelity")
	ctx := context.Background()

	sched := builders.MakeWorkload("airflow-scheduler", ns).Replicas(2).
		LogWriter("scheduler", "-rate=65536", "-line-size=256", "-rotate-bytes=131072", "-for=6s").Obj()
	quiet := builders.MakeWorkload("quiet", ns).Quiet("quiet").Obj()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, sched, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, quiet, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	type target struct {
		pod       corev1.Pod
		container string
		id        string
		written   int64 // bytes of log lines the logwriter wrote; 0 for the quiet pod
	}
	var targets []target
	for _, p := range waitRolledOut(t, cs, sched, 120*time.Second) {
		targets = append(targets, target{pod: p, container: "scheduler", id: containerID(t, p, "scheduler")})
	}
	for _, p := range waitRolledOut(t, cs, quiet, 120*time.Second) {
		targets = append(targets, target{pod: p, container: "quiet", id: containerID(t, p, "quiet")})
	}
	// The writers stop after 6 s; from then on the layers do not change.
	for i := range targets {
		if targets[i].container == "scheduler" {
			targets[i].written = doneBytes(t, waitLog(t, cs, targets[i].pod, "scheduler", "done ", 60*time.Second))
		}
	}
	doneAt := time.Now()

	measured := measureNode(t, c)
	for _, tg := range targets {
		mc, ok := measured[tg.id]
		if !ok {
			t.Fatalf("pod %s container %s (%s) not found by the scanner", tg.pod.Name, tg.container, tg.id)
		}
		if mc.Err != nil {
			t.Fatalf("measuring %s: %v", tg.pod.Name, mc.Err)
		}
		if !mc.Running || mc.Namespace != ns || mc.Pod != tg.pod.Name || mc.PodUID != string(tg.pod.UID) || mc.Name != tg.container {
			t.Errorf("scanner identity of %s: %+v", tg.id, mc.Container)
		}
		du := duBytes(t, mc.UpperDirPath())
		t.Logf("%s/%s: scanner %d B, du -sB1 %d B, log lines written %d B (upperdir %s)", tg.pod.Name, tg.container, mc.Usage.Bytes, du, tg.written, mc.UpperDir)
		if mc.Usage.Bytes != du {
			t.Errorf("%s/%s: scanner measured %d bytes, du -sB1 of its upperdir says %d", tg.pod.Name, tg.container, mc.Usage.Bytes, du)
		}
		if mc.Usage.Bytes < tg.written {
			t.Errorf("%s/%s: scanner measured %d bytes, less than the %d bytes of log written", tg.pod.Name, tg.container, mc.Usage.Bytes, tg.written)
		}
	}

	// The kubelet's figures come from containerd, which walks every snapshot every 10 s:
	// wait for one taken after the writers stopped.
	var kubelet map[string]cluster.FsStats
	waitFor(t, 60*time.Second, "kubelet Summary figures taken after the writes", func() error {
		s, err := c.Summary(ctx)
		if err != nil {
			return err
		}
		kubelet = map[string]cluster.FsStats{}
		for _, p := range s.Pods {
			for _, ct := range p.Containers {
				if ct.Rootfs != nil && ct.Rootfs.UsedBytes != nil {
					kubelet[p.PodRef.Namespace+"/"+p.PodRef.Name+"/"+ct.Name] = *ct.Rootfs
				}
			}
		}
		for _, tg := range targets {
			fs, ok := kubelet[ns+"/"+tg.pod.Name+"/"+tg.container]
			if !ok {
				return fmt.Errorf("no rootfs figure for %s/%s yet", tg.pod.Name, tg.container)
			}
			if !fs.Time.After(doneAt) {
				return fmt.Errorf("rootfs figure of %s/%s taken at %s, before the writes ended (%s)", tg.pod.Name, tg.container, fs.Time.Format(time.RFC3339Nano), doneAt.Format(time.RFC3339Nano))
			}
		}
		return nil
	})
	for _, tg := range targets {
		ours := measured[tg.id].Usage.Bytes
		fs := kubelet[ns+"/"+tg.pod.Name+"/"+tg.container]
		theirs := int64(*fs.UsedBytes)
		t.Logf("%s/%s: scanner %d B, kubelet Summary rootfs.usedBytes %d B (taken %v after the writes ended)",
			tg.pod.Name, tg.container, ours, theirs, fs.Time.Sub(doneAt).Round(time.Millisecond))
		if d := theirs - ours; d*100 > ours || -d*100 > ours {
			t.Errorf("%s/%s: scanner %d bytes and kubelet rootfs.usedBytes %d differ by more than 1%%", tg.pod.Name, tg.container, ours, theirs)
		}
	}
}

// doneBytes parses logwriter's "done <bytes> lines <seq>" line.
func doneBytes(t *testing.T, log string) int64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^done (\d+) lines \d+$`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no done line in the log:\n%s", log)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
