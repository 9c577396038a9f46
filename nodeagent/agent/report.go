package agent

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery"
	"github.com/layerkeeper/layerkeeper/nodeagent/kubelet"
	"github.com/layerkeeper/layerkeeper/nodeagent/measure"
	"github.com/layerkeeper/layerkeeper/nodeagent/scanner"
)

// Bounds of a report, matching the CRD's.
const (
	MaxContainers  = 1000
	MaxHotPaths    = 16
	MaxFilesystems = 8
	maxMessage     = 1024
)

// BuildOptions tune Build.
type BuildOptions struct {
	// MaxContainers bounds status.containers (default and cap MaxContainers).
	MaxContainers int
	// AgentVersion is written to status.agentVersion.
	AgentVersion string
}

// podRef is a container of a pod bound to the node.
type podRef struct {
	pod       *corev1.Pod
	container string
}

// indexPods maps "<scheme>://<id>" of every container status, and "<podUID>/<name>", to the pod.
func indexPods(pods []corev1.Pod) map[string]podRef {
	idx := map[string]podRef{}
	for i := range pods {
		p := &pods[i]
		for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses, p.Status.EphemeralContainerStatuses} {
			for _, cs := range list {
				if cs.ContainerID != "" {
					idx[cs.ContainerID] = podRef{p, cs.Name}
				}
				if cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.ContainerID != "" {
					idx[cs.LastTerminationState.Terminated.ContainerID] = podRef{p, cs.Name}
				}
			}
		}
		for _, c := range p.Spec.Containers {
			idx[string(p.UID)+"/"+c.Name] = podRef{p, c.Name}
		}
	}
	return idx
}

// Build turns one measuring pass into the report's status. Containers are joined with the
// pods bound to the node by their Kubernetes container ID (or, before the pod status shows it,
// by pod UID and container name from the runtime's identity); the output is deterministic.
// kl is what the agent read of its kubelet (nil: nothing): its eviction thresholds, and which
// filesystem is the kubelet's nodefs (any other holding writable layers is the runtime's
// imagefs).
func Build(res measure.Result, kl *kubelet.Result, pods []corev1.Pod, now time.Time, opts BuildOptions) v1alpha1.NodeLayerReportStatus {
	limit := opts.MaxContainers
	if limit <= 0 || limit > MaxContainers {
		limit = MaxContainers
	}
	idx := indexPods(pods)
	st := v1alpha1.NodeLayerReportStatus{AgentVersion: opts.AgentVersion, Runtimes: res.Runtimes()}
	scan := metav1.NewTime(res.Started.Add(res.Duration))
	st.ScanTime = &scan
	st.ScanDuration = &metav1.Duration{Duration: res.Duration.Round(time.Millisecond)}
	for _, f := range res.Filesystems {
		st.Filesystems = append(st.Filesystems, v1alpha1.FilesystemUsage{Path: f.Path, CapacityBytes: f.CapacityBytes,
			AvailableBytes: f.AvailableBytes, Inodes: f.Inodes, InodesFree: f.InodesFree, KubeletFilesystem: kubeletFilesystem(kl, f.Device)})
	}
	if kl != nil {
		ke := kl.Eviction
		st.KubeletEviction = &ke
	}
	slices.SortFunc(st.Filesystems, func(a, b v1alpha1.FilesystemUsage) int { return strings.Compare(a.Path, b.Path) })
	if len(st.Filesystems) > MaxFilesystems {
		st.Filesystems = st.Filesystems[:MaxFilesystems]
	}

	var failed []string
	perFS := map[string]int64{}
	for _, c := range res.Containers {
		if c.Sandbox {
			continue
		}
		if c.Err != nil {
			failed = append(failed, fmt.Sprintf("%s %s: %v", c.Runtime, shortID(c.ID), c.Err))
			continue
		}
		cl := layerOf(c, idx)
		st.Containers = append(st.Containers, cl)
		st.ContainerCount++
		st.TotalBytes += cl.Bytes
		perFS[evaluation.FilesystemOf(st.Filesystems, c.UpperDir)] += cl.Bytes
	}
	for _, e := range res.Errors {
		failed = append(failed, e.Error())
	}
	slices.SortStableFunc(st.Containers, func(a, b v1alpha1.ContainerLayer) int {
		if c := cmp.Compare(b.Bytes, a.Bytes); c != 0 {
			return c
		}
		return strings.Compare(a.ContainerID, b.ContainerID)
	})
	if len(st.Containers) > limit {
		st.Containers = st.Containers[:limit]
	}
	var busiest string
	for _, f := range st.Filesystems {
		if busiest == "" || perFS[f.Path] > perFS[busiest] {
			busiest = f.Path
		}
	}
	for _, f := range st.Filesystems {
		if f.Path == busiest {
			st.NodeAvailableBytes = f.AvailableBytes
		}
	}
	cond := metav1.Condition{Type: v1alpha1.ConditionScanned, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonScanComplete,
		Message: fmt.Sprintf("measured %d containers in %s", st.ContainerCount, st.ScanDuration.Duration), LastTransitionTime: metav1.NewTime(now)}
	if len(failed) > 0 {
		slices.Sort(failed)
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonScanPartial
		cond.Message = truncate(fmt.Sprintf("%d problems: %s", len(failed), strings.Join(failed, "; ")), maxMessage)
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	return st
}

// kubeletFilesystem says which of the kubelet's filesystems the device is: nodefs when it
// holds the kubelet's root directory, imagefs otherwise (the runtime's own filesystem), unset
// when the kubelet's was not found.
func kubeletFilesystem(kl *kubelet.Result, device string) v1alpha1.KubeletFilesystem {
	switch {
	case kl == nil || kl.NodefsDevice == "" || device == "":
		return ""
	case device == kl.NodefsDevice:
		return v1alpha1.KubeletNodefs
	}
	return v1alpha1.KubeletImagefs
}

func layerOf(c measure.Container, idx map[string]podRef) v1alpha1.ContainerLayer {
	cl := v1alpha1.ContainerLayer{
		Runtime: c.Runtime, ContainerID: c.ID, State: v1alpha1.ContainerStopped,
		Namespace: c.Namespace, Pod: c.Pod, PodUID: c.PodUID, Container: c.Name, UpperDir: c.UpperDir,
		Bytes: c.Usage.Bytes, ApparentBytes: c.Usage.ApparentBytes, Inodes: c.Usage.Inodes,
		DeletedOpenBytes: c.DeletedOpenBytes, GrowthBytesPerMinute: c.GrowthBytesPerMinute,
	}
	if c.Running {
		cl.State = v1alpha1.ContainerRunning
	}
	ref, ok := idx[discovery.K8sContainerID(c.Container)]
	if !ok && c.PodUID != "" {
		ref, ok = idx[c.PodUID+"/"+c.Name]
	}
	if ok {
		cl.Namespace, cl.Pod, cl.PodUID, cl.Container = ref.pod.Namespace, ref.pod.Name, string(ref.pod.UID), ref.container
		if o := metav1.GetControllerOf(ref.pod); o != nil {
			cl.Owner = &v1alpha1.PodOwner{Kind: o.Kind, Name: o.Name}
		}
	}
	seen := map[string]bool{}
	// Requested hot paths first (policies need their exact figures), then the largest dirs.
	for _, list := range [][]v1alpha1.HotPathUsage{usages(c.Usage.HotPaths, c.HotPathGrowth), usages(c.Usage.TopDirs, c.HotPathGrowth)} {
		for _, h := range list {
			if !seen[h.Path] && len(cl.HotPaths) < MaxHotPaths {
				seen[h.Path] = true
				cl.HotPaths = append(cl.HotPaths, h)
			}
		}
	}
	slices.SortStableFunc(cl.HotPaths, func(a, b v1alpha1.HotPathUsage) int { return cmp.Compare(b.Bytes, a.Bytes) })
	return cl
}

func usages(dirs []scanner.DirUsage, growth map[string]int64) []v1alpha1.HotPathUsage {
	out := make([]v1alpha1.HotPathUsage, 0, len(dirs))
	for _, d := range dirs {
		out = append(out, v1alpha1.HotPathUsage{Path: truncate(d.Path, 4096), Bytes: d.Bytes, Files: d.Files, GrowthBytesPerMinute: growth[d.Path]})
	}
	return out
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// WriteOptions say when a report is worth writing.
type WriteOptions struct {
	// ChangeFraction is the relative move of a container's bytes or a filesystem's free
	// space that makes a write (default 0.05).
	ChangeFraction float64
	// Heartbeat is the longest time between writes (default 5m), so the controller can tell
	// a live agent with steady figures from a dead one.
	Heartbeat time.Duration
}

// ShouldWrite decides whether next differs enough from the last written report prev.
func ShouldWrite(prev, next *v1alpha1.NodeLayerReportStatus, now time.Time, o WriteOptions) (bool, string) {
	if o.ChangeFraction <= 0 {
		o.ChangeFraction = 0.05
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 5 * time.Minute
	}
	if prev == nil || prev.ScanTime == nil {
		return true, "first"
	}
	if now.Sub(prev.ScanTime.Time) >= o.Heartbeat {
		return true, "heartbeat"
	}
	if len(prev.Containers) != len(next.Containers) || prev.ContainerCount != next.ContainerCount {
		return true, "containers"
	}
	old := map[string]v1alpha1.ContainerLayer{}
	for _, c := range prev.Containers {
		old[c.ContainerID] = c
	}
	for _, c := range next.Containers {
		p, ok := old[c.ContainerID]
		if !ok || p.State != c.State || p.Pod != c.Pod || p.Container != c.Container {
			return true, "containers"
		}
		if moved(p.Bytes, c.Bytes, o.ChangeFraction) {
			return true, "bytes"
		}
	}
	if len(prev.Filesystems) != len(next.Filesystems) {
		return true, "filesystems"
	}
	for i := range next.Filesystems {
		if prev.Filesystems[i].Path != next.Filesystems[i].Path ||
			moved(prev.Filesystems[i].AvailableBytes, next.Filesystems[i].AvailableBytes, o.ChangeFraction) {
			return true, "filesystems"
		}
	}
	if !equality.Semantic.DeepEqual(prev.KubeletEviction, next.KubeletEviction) {
		return true, "kubelet"
	}
	for i := range next.Filesystems {
		if prev.Filesystems[i].KubeletFilesystem != next.Filesystems[i].KubeletFilesystem {
			return true, "kubelet"
		}
	}
	pc := meta.FindStatusCondition(prev.Conditions, v1alpha1.ConditionScanned)
	nc := meta.FindStatusCondition(next.Conditions, v1alpha1.ConditionScanned)
	if (pc == nil) != (nc == nil) || (pc != nil && (pc.Status != nc.Status || pc.Reason != nc.Reason)) {
		return true, "condition"
	}
	return false, ""
}

func moved(a, b int64, fraction float64) bool {
	if a == b {
		return false
	}
	base := math.Max(math.Abs(float64(a)), 1)
	return math.Abs(float64(b-a))/base > fraction
}
