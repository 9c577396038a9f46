package agent

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

func TestShouldWrite(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { mt := metav1.NewTime(t0.Add(d)); return &mt }
	base := func() *v1alpha1.NodeLayerReportStatus {
		return &v1alpha1.NodeLayerReportStatus{
			ScanTime:       at(0),
			ContainerCount: 2,
			Containers: []v1alpha1.ContainerLayer{
				{ContainerID: "a", State: v1alpha1.ContainerRunning, Pod: "p", Container: "c", Bytes: 1000},
				{ContainerID: "b", State: v1alpha1.ContainerRunning, Pod: "q", Container: "c", Bytes: 0},
			},
			Filesystems: []v1alpha1.FilesystemUsage{{Path: "/", AvailableBytes: 1 << 30}},
			Conditions:  []metav1.Condition{{Type: v1alpha1.ConditionScanned, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonScanComplete}},
		}
	}
	cases := []struct {
		name       string
		prev       *v1alpha1.NodeLayerReportStatus
		mutate     func(*v1alpha1.NodeLayerReportStatus)
		after      time.Duration
		want       bool
		wantReason string
	}{
		{name: "no previous report", prev: nil, want: true, wantReason: "first"},
		{name: "nothing moved", prev: base(), after: time.Minute},
		{name: "bytes moved 5% exactly", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[0].Bytes = 1050 }},
		{name: "bytes moved over 5%", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[0].Bytes = 1051 },
			want: true, wantReason: "bytes"},
		{name: "bytes shrank over 5%", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[0].Bytes = 900 },
			want: true, wantReason: "bytes"},
		{name: "an empty layer starts growing", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[1].Bytes = 4096 },
			want: true, wantReason: "bytes"},
		{name: "a container appeared", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) {
			s.Containers = append(s.Containers, v1alpha1.ContainerLayer{ContainerID: "c"})
			s.ContainerCount++
		}, want: true, wantReason: "containers"},
		{name: "a container was replaced", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[1].ContainerID = "z" },
			want: true, wantReason: "containers"},
		{name: "a container stopped", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[0].State = v1alpha1.ContainerStopped },
			want: true, wantReason: "containers"},
		{name: "the pod status caught up with the identity", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Containers[0].Pod = "p2" },
			want: true, wantReason: "containers"},
		{name: "free space moved over 5%", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) { s.Filesystems[0].AvailableBytes = 900 << 20 },
			want: true, wantReason: "filesystems"},
		{name: "scan became partial", prev: base(), after: time.Minute, mutate: func(s *v1alpha1.NodeLayerReportStatus) {
			s.Conditions[0].Status, s.Conditions[0].Reason = metav1.ConditionFalse, v1alpha1.ReasonScanPartial
		}, want: true, wantReason: "condition"},
		{name: "heartbeat due", prev: base(), after: 5 * time.Minute, want: true, wantReason: "heartbeat"},
		{name: "just before the heartbeat", prev: base(), after: 5*time.Minute - time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := base()
			next.ScanTime = at(tc.after)
			if tc.mutate != nil {
				tc.mutate(next)
			}
			got, reason := ShouldWrite(tc.prev, next, t0.Add(tc.after), WriteOptions{})
			if got != tc.want || reason != tc.wantReason {
				t.Errorf("ShouldWrite = %v %q, want %v %q", got, reason, tc.want, tc.wantReason)
			}
		})
	}
}
