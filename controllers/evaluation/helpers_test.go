package evaluation

import (
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

const (
	Ki int64 = 1 << 10
	Mi int64 = 1 << 20
	Gi int64 = 1 << 30
)

// t0 is the time of every report in these tests; evaluations happen at t0 + a minute.
var (
	t0  = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	now = t0.Add(time.Minute)
)

const testFS = "/var/lib/containerd"

// diffOf returns "" when want and got are equal, and otherwise their difference (-want +got).
func diffOf(want, got any) string {
	return cmp.Diff(want, got)
}

// policyWrapper builds LayerPolicies: makePolicy("p").Warn("3Gi").Enforce().Obj().
type policyWrapper struct{ v1alpha1.LayerPolicy }

func makePolicy(name string) *policyWrapper {
	return &policyWrapper{v1alpha1.LayerPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       v1alpha1.LayerPolicySpec{Mode: v1alpha1.ModeAudit},
	}}
}

func (w *policyWrapper) Obj() *v1alpha1.LayerPolicy { return &w.LayerPolicy }

func (w *policyWrapper) Enforce() *policyWrapper {
	w.Spec.Mode = v1alpha1.ModeEnforce
	return w
}

func (w *policyWrapper) Warn(q string) *policyWrapper {
	w.Spec.Thresholds.Warn = ptr.To(resource.MustParse(q))
	return w
}

func (w *policyWrapper) Offload(q string) *policyWrapper {
	w.Spec.Thresholds.Offload = ptr.To(resource.MustParse(q))
	return w
}

func (w *policyWrapper) Restart(q string) *policyWrapper {
	w.Spec.Thresholds.Restart = ptr.To(resource.MustParse(q))
	return w
}

func (w *policyWrapper) LeadTime(d time.Duration) *policyWrapper {
	w.Spec.Thresholds.LeadTime = &metav1.Duration{Duration: d}
	return w
}

func (w *policyWrapper) Containers(names ...string) *policyWrapper {
	w.Spec.Containers = names
	return w
}

// ShipTo gives the policy a bucket and hot paths, so it can offload.
func (w *policyWrapper) ShipTo(paths ...string) *policyWrapper {
	w.Spec.Offload = &v1alpha1.Offload{S3: &v1alpha1.S3Target{Bucket: "logs"}}
	for _, p := range paths {
		w.Spec.HotPaths = append(w.Spec.HotPaths, v1alpha1.HotPath{Path: p})
	}
	return w
}

// ArchiveOnly marks the policy's last hot path deleteAfterUpload=false.
func (w *policyWrapper) ArchiveOnly() *policyWrapper {
	w.Spec.HotPaths[len(w.Spec.HotPaths)-1].DeleteAfterUpload = ptr.To(false)
	return w
}

func (w *policyWrapper) NodePressure(pct int32) *policyWrapper {
	if w.Spec.NodePressure == nil {
		w.Spec.NodePressure = &v1alpha1.NodePressure{}
	}
	w.Spec.NodePressure.MinAvailablePercent = pct
	return w
}

func (w *policyWrapper) InodeMargin(pct int32) *policyWrapper {
	if w.Spec.NodePressure == nil {
		w.Spec.NodePressure = &v1alpha1.NodePressure{}
	}
	w.Spec.NodePressure.MinInodesFreePercent = ptr.To(pct)
	return w
}

func (w *policyWrapper) Action(a v1alpha1.RemediationAction) *policyWrapper {
	w.Spec.Remediation.Action = a
	return w
}

func (w *policyWrapper) OffloadBeforeRestart(b bool) *policyWrapper {
	w.Spec.Remediation.OffloadBeforeRestart = ptr.To(b)
	return w
}

func (w *policyWrapper) Cooldown(d time.Duration) *policyWrapper {
	w.Spec.Remediation.Cooldown = &metav1.Duration{Duration: d}
	return w
}

func (w *policyWrapper) MaxConcurrent(n int32) *policyWrapper {
	w.Spec.Remediation.MaxConcurrent = n
	return w
}

// podWrapper builds PodFigures: makePod("web").Container("app", 2*Gi).Growth(Mi).Obj().
// Container options apply to the last container added.
type podWrapper struct{ PodFigures }

func makePod(name string) *podWrapper {
	t := t0
	return &podWrapper{PodFigures{
		Namespace: "default", Pod: name, PodUID: name + "-uid", Node: "node-1", ReportTime: &t,
	}}
}

func (w *podWrapper) Obj() PodFigures { return w.PodFigures }

func (w *podWrapper) Container(name string, bytes int64) *podWrapper {
	w.Containers = append(w.Containers, ContainerFigures{
		Name: name, ContainerID: w.Pod + "-" + name, State: v1alpha1.ContainerRunning,
		Bytes: bytes, Filesystem: testFS,
	})
	return w
}

func (w *podWrapper) last() *ContainerFigures { return &w.Containers[len(w.Containers)-1] }

func (w *podWrapper) Growth(perMinute int64) *podWrapper {
	w.last().GrowthBytesPerMinute = perMinute
	return w
}

func (w *podWrapper) Hot(path string, bytes int64) *podWrapper {
	w.last().HotPaths = append(w.last().HotPaths, v1alpha1.HotPathUsage{Path: path, Bytes: bytes})
	return w
}

func (w *podWrapper) HotFiles(path string, bytes, files int64) *podWrapper {
	w.last().HotPaths = append(w.last().HotPaths, v1alpha1.HotPathUsage{Path: path, Bytes: bytes, Files: files})
	return w
}

func (w *podWrapper) Inodes(n int64) *podWrapper {
	w.last().Inodes = n
	return w
}

func (w *podWrapper) DeletedOpen(n int64) *podWrapper {
	w.last().DeletedOpenBytes = n
	return w
}

func (w *podWrapper) Stopped() *podWrapper {
	w.last().State = v1alpha1.ContainerStopped
	return w
}

func (w *podWrapper) ReportedAt(t time.Time) *podWrapper {
	w.ReportTime = &t
	return w
}

func (w *podWrapper) NoReport() *podWrapper {
	w.ReportTime = nil
	return w
}

func (w *podWrapper) Node(n string) *podWrapper {
	w.PodFigures.Node = n
	return w
}

func policies(ws ...*policyWrapper) []*v1alpha1.LayerPolicy {
	out := make([]*v1alpha1.LayerPolicy, len(ws))
	for i, w := range ws {
		out[i] = w.Obj()
	}
	return out
}

// fsUsage is a 100Gi filesystem at testFS with the given free bytes and 1,000,000 inodes of
// which inodesFree are free.
func fsUsage(available, inodesFree int64) v1alpha1.FilesystemUsage {
	return v1alpha1.FilesystemUsage{Path: testFS, CapacityBytes: 100 * Gi, AvailableBytes: available, Inodes: 1_000_000, InodesFree: inodesFree}
}

var noAction = Action{Kind: ActionNone}
