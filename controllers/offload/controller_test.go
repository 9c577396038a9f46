package offload

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

func TestExpired(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	done := func(name string, ago time.Duration) v1alpha1.LayerOffload {
		at := metav1.NewTime(now.Add(-ago))
		return v1alpha1.LayerOffload{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1alpha1.LayerOffloadStatus{CompletionTime: &at}}
	}
	del, next := Expired([]v1alpha1.LayerOffload{done("fresh", time.Hour), done("old", 25*time.Hour), done("edge", 24*time.Hour)}, 24*time.Hour, now)
	slices.Sort(del)
	if diff := cmp.Diff([]string{"edge", "old"}, del); diff != "" {
		t.Errorf("deleted (-want +got):\n%s", diff)
	}
	if next != 23*time.Hour {
		t.Errorf("next expiry in %s, want 23h", next)
	}

	var many []v1alpha1.LayerOffload
	for i := range MaxHistory + 5 {
		many = append(many, done(fmt.Sprintf("o%02d", i), time.Duration(i)*time.Minute))
	}
	del, _ = Expired(many, 24*time.Hour, now)
	slices.Sort(del)
	want := []string{}
	for i := MaxHistory; i < MaxHistory+5; i++ {
		want = append(want, fmt.Sprintf("o%02d", i))
	}
	if diff := cmp.Diff(want, del); diff != "" {
		t.Errorf("beyond the history bound (-want +got):\n%s", diff)
	}
	if del, next := Expired(nil, time.Hour, now); len(del) != 0 || next != 0 {
		t.Errorf("nothing finished: %v %s", del, next)
	}
}
