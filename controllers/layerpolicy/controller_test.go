package layerpolicy

import (
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/test/builders"
)

func TestKubeletChanged(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	base := func() *v1alpha1.NodeLayerReport {
		return builders.MakeReport("node-a", t0, 100<<30, 50<<30).KubeletEviction("10%", "5%").Obj()
	}
	cases := map[string]struct {
		mutate func(*v1alpha1.NodeLayerReport)
		want   bool
	}{
		"a new scan, the same kubelet and filesystems": {mutate: func(r *v1alpha1.NodeLayerReport) {
			r.Status.Filesystems[0].AvailableBytes = 10 << 30
			r.Status.TotalBytes = 1 << 30
		}},
		"a threshold changed":         {mutate: func(r *v1alpha1.NodeLayerReport) { r.Status.KubeletEviction.NodefsAvailable = "15%" }, want: true},
		"the thresholds went away":    {mutate: func(r *v1alpha1.NodeLayerReport) { r.Status.KubeletEviction = nil }, want: true},
		"the source changed":          {mutate: func(r *v1alpha1.NodeLayerReport) { r.Status.KubeletEviction.Source = v1alpha1.KubeletEvictionDefaults }, want: true},
		"a filesystem became imagefs": {mutate: func(r *v1alpha1.NodeLayerReport) { r.Status.Filesystems[0].KubeletFilesystem = v1alpha1.KubeletImagefs }, want: true},
		"a filesystem grew":           {mutate: func(r *v1alpha1.NodeLayerReport) { r.Status.Filesystems[0].CapacityBytes *= 2 }, want: true},
		"a filesystem appeared": {mutate: func(r *v1alpha1.NodeLayerReport) {
			r.Status.Filesystems = append(r.Status.Filesystems, v1alpha1.FilesystemUsage{Path: "/var/lib/docker"})
		}, want: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			old, next := base(), base()
			tc.mutate(next)
			if got := (kubeletChanged{}).Update(event.UpdateEvent{ObjectOld: old, ObjectNew: next}); got != tc.want {
				t.Errorf("Update() = %v, want %v", got, tc.want)
			}
		})
	}
}
