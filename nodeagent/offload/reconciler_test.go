package offload

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

func TestBackoff(t *testing.T) {
	for attempts, want := range map[int32]time.Duration{0: 30 * time.Second, 1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute,
		5: 8 * time.Minute, 6: 10 * time.Minute, 100: 10 * time.Minute} {
		if got := Backoff(attempts); got != want {
			t.Errorf("Backoff(%d) = %s, want %s", attempts, got, want)
		}
	}
}

func TestDue(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-ago)); return &t }
	failed := func(attempts int32, ago time.Duration, reason string) v1alpha1.LayerOffloadStatus {
		return v1alpha1.LayerOffloadStatus{Phase: v1alpha1.OffloadFailed, Attempts: attempts, CompletionTime: at(ago),
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionFailed, Status: metav1.ConditionTrue, Reason: reason}}}
	}
	cases := map[string]struct {
		st       v1alpha1.LayerOffloadStatus
		wantDue  bool
		wantWait time.Duration
	}{
		"new":                          {v1alpha1.LayerOffloadStatus{}, true, 0},
		"pending":                      {v1alpha1.LayerOffloadStatus{Phase: v1alpha1.OffloadPending}, true, 0},
		"running after an agent crash": {v1alpha1.LayerOffloadStatus{Phase: v1alpha1.OffloadRunning, Attempts: 1}, true, 0},
		"succeeded":                    {v1alpha1.LayerOffloadStatus{Phase: v1alpha1.OffloadSucceeded}, false, 0},
		"failed, backing off":          {failed(1, 10*time.Second, v1alpha1.ReasonUploadFailed), false, 20 * time.Second},
		"failed, backoff over":         {failed(1, 30*time.Second, v1alpha1.ReasonUploadFailed), true, 0},
		"failed twice, longer backoff": {failed(2, 30*time.Second, v1alpha1.ReasonUploadFailed), false, 30 * time.Second},
		"failed, attempts used up":     {failed(6, time.Hour, v1alpha1.ReasonUploadFailed), false, 0},
		"container gone is final":      {failed(1, time.Hour, v1alpha1.ReasonContainerGone), false, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			due, wait := Due(tc.st, DefaultMaxAttempts, now)
			if due != tc.wantDue || wait != tc.wantWait {
				t.Errorf("Due = %v, %s; want %v, %s", due, wait, tc.wantDue, tc.wantWait)
			}
		})
	}
}

// TestProcessesLeft: a container's processes count as left while they run; once they exit
// they do not, even when their PID is handed to a new process (a new start time).
func TestProcessesLeft(t *testing.T) {
	t.Run("real processes", func(t *testing.T) {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ps := watchProcesses("/proc", []int{cmd.Process.Pid})
		if !ps.left() {
			t.Fatalf("a running process is not left")
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if ps.left() {
			t.Errorf("an exited (and reaped) process is still left")
		}
		if watchProcesses("/proc", []int{cmd.Process.Pid}).left() {
			t.Errorf("a PID that no longer runs is watched")
		}
	})
	t.Run("a reused PID", func(t *testing.T) {
		proc := t.TempDir()
		stat := func(pid int, comm, start string) {
			dir := filepath.Join(proc, strconv.Itoa(pid))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			// Fields 3 to 21, then the start time (22) and a few more.
			line := fmt.Sprintf("%d (%s) S 1 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 %s 1000 100 18446744073709551615\n", pid, comm, start)
			if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		stat(4242, "logwriter (x) y)", "123456")
		ps := watchProcesses(proc, []int{4242, 4343})
		if !ps.left() {
			t.Fatalf("the process is not left; watched %v", ps.started)
		}
		stat(4242, "bash", "999999") // exited; its PID now belongs to another process
		if ps.left() {
			t.Errorf("a reused PID counts as the container's process")
		}
	})
}
