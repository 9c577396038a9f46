package evaluation

import (
	"slices"
	"strings"
	"time"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// ContainerFigures are one container's writable-layer figures, as its node's NodeLayerReport
// measured them.
type ContainerFigures struct {
	// Name is the container's name in the pod; spec.containers filters on it.
	Name string
	// ContainerID is the runtime's ID of the container; node-pressure plans are keyed on it.
	ContainerID string
	// State is Running or Stopped. Only running containers are evaluated: a stopped
	// container's layer belongs to the kubelet's container garbage collection, and no offload
	// can reach a filesystem no process holds.
	State v1alpha1.ContainerState
	// Bytes is the writable layer's size as the disk counts it; thresholds compare against it.
	Bytes int64
	// DeletedOpenBytes is held by deleted files still open; a restart frees it, an offload
	// does not. Only node-pressure planning uses it.
	DeletedOpenBytes int64
	// Inodes is the number of entries in the writable layer.
	Inodes int64
	// GrowthBytesPerMinute is the smoothed growth rate (negative when shrinking).
	GrowthBytesPerMinute int64
	// HotPaths are the layer's largest directories and those policies named, largest first.
	HotPaths []v1alpha1.HotPathUsage
	// Filesystem is the path of the node filesystem holding the layer (a
	// status.filesystems[].path of the report).
	Filesystem string
}

// PodFigures are the figures of one pod's containers, gathered from the NodeLayerReport of
// the pod's node.
type PodFigures struct {
	// Namespace, Pod, PodUID and Node identify the pod.
	Namespace, Pod, PodUID, Node string
	// Containers has one entry per container of the pod with a writable layer.
	Containers []ContainerFigures
	// ReportTime is the report's scanTime; nil means no report (or no scan time) yet.
	ReportTime *time.Time
}

// PodsFromReport groups a NodeLayerReport's containers by pod (pod UID, or namespace and
// name when the UID is missing), sorted by namespace and name. Containers outside
// Kubernetes (no pod name) are left out. Each container is given the report's filesystem
// that holds its upper directory (see FilesystemOf). The figures share the report's hot-path
// slices; treat them as read-only.
func PodsFromReport(report *v1alpha1.NodeLayerReport) []PodFigures {
	if report == nil {
		return nil
	}
	st := &report.Status
	var scan *time.Time
	if st.ScanTime != nil {
		t := st.ScanTime.Time
		scan = &t
	}
	type podKey struct{ uid, ns, name string }
	// First pass: one entry per pod with its number of containers, so that a single backing
	// array holds every pod's containers.
	index := make(map[podKey]int, len(st.Containers)/2+1)
	podOf := make([]int, len(st.Containers))
	var pods []PodFigures
	var counts []int
	for i := range st.Containers {
		c := &st.Containers[i]
		podOf[i] = -1
		if c.Pod == "" {
			continue
		}
		k := podKey{uid: c.PodUID}
		if k.uid == "" {
			k = podKey{ns: c.Namespace, name: c.Pod}
		}
		at, ok := index[k]
		if !ok {
			at = len(pods)
			index[k] = at
			pods = append(pods, PodFigures{
				Namespace:  c.Namespace,
				Pod:        c.Pod,
				PodUID:     c.PodUID,
				Node:       report.Name,
				ReportTime: scan,
			})
			counts = append(counts, 0)
		}
		podOf[i] = at
		counts[at]++
	}
	backing := make([]ContainerFigures, 0, len(st.Containers))
	for i, n := range counts {
		pods[i].Containers = backing[len(backing) : len(backing) : len(backing)+n]
		backing = backing[:len(backing)+n]
	}
	for i := range st.Containers {
		if podOf[i] < 0 {
			continue
		}
		c := &st.Containers[i]
		pods[podOf[i]].Containers = append(pods[podOf[i]].Containers, ContainerFigures{
			Name:                 c.Container,
			ContainerID:          c.ContainerID,
			State:                c.State,
			Bytes:                c.Bytes,
			DeletedOpenBytes:     c.DeletedOpenBytes,
			Inodes:               c.Inodes,
			GrowthBytesPerMinute: c.GrowthBytesPerMinute,
			HotPaths:             c.HotPaths,
			Filesystem:           FilesystemOf(st.Filesystems, c.UpperDir),
		})
	}
	slices.SortFunc(pods, func(a, b PodFigures) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Pod, b.Pod)
	})
	return pods
}

// FilesystemOf returns the path of the filesystem, among fss, that holds dir: the longest
// path that is dir or one of its parents. With no match it returns the only filesystem's path
// when there is exactly one, and "" otherwise.
func FilesystemOf(fss []v1alpha1.FilesystemUsage, dir string) string {
	best := ""
	for i := range fss {
		p := fss[i].Path
		if len(p) > len(best) && underPath(dir, p) {
			best = p
		}
	}
	if best == "" && len(fss) == 1 {
		return fss[0].Path
	}
	return best
}

// underPath says whether p is root or below it.
func underPath(p, root string) bool {
	if root == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == root || (strings.HasPrefix(p, root) && len(p) > len(root) && p[len(root)] == '/')
}

// TopHotPath returns the most specific directory that holds most of the layer: starting from
// the largest entry, it descends to the largest entry below the current one as long as that
// entry holds at least half of the current one's bytes. Nested entries (/opt/airflow/logs
// and /opt/airflow/logs/scheduler/2026-11-25) thus name the directory that actually grows.
func TopHotPath(hps []v1alpha1.HotPathUsage) (v1alpha1.HotPathUsage, bool) {
	cur := -1
	for i := range hps {
		if cur < 0 || hps[i].Bytes > hps[cur].Bytes || (hps[i].Bytes == hps[cur].Bytes && hps[i].Path < hps[cur].Path) {
			cur = i
		}
	}
	if cur < 0 || hps[cur].Bytes <= 0 {
		return v1alpha1.HotPathUsage{}, false
	}
	for {
		next := -1
		for i := range hps {
			if i == cur || hps[i].Path == hps[cur].Path || !underPath(hps[i].Path, hps[cur].Path) {
				continue
			}
			if 2*hps[i].Bytes < hps[cur].Bytes {
				continue
			}
			if next < 0 || hps[i].Bytes > hps[next].Bytes || (hps[i].Bytes == hps[next].Bytes && len(hps[i].Path) > len(hps[next].Path)) {
				next = i
			}
		}
		if next < 0 {
			return hps[cur], true
		}
		cur = next
	}
}
