package scanner

import (
	"context"
	"testing"
	"time"
)

// fakeMachine is a clock and a process CPU counter: work advances both (one busy core),
// waiting for the disk advances the clock only, and sleeps advance the clock.
type fakeMachine struct {
	now   time.Time
	cpu   time.Duration
	slept time.Duration
}

func (m *fakeMachine) Now() time.Time     { return m.now }
func (m *fakeMachine) CPU() time.Duration { return m.cpu }
func (m *fakeMachine) work(cores float64, d time.Duration) {
	m.now = m.now.Add(d)
	m.cpu += time.Duration(cores * float64(d))
}

func (m *fakeMachine) Sleep(ctx context.Context, d time.Duration) error {
	m.slept += d
	m.now = m.now.Add(d)
	return ctx.Err()
}

func newFakeLimiter(limit float64) (*cpuLimiter, *fakeMachine) {
	m := &fakeMachine{now: time.Unix(1_800_000_000, 0), cpu: 5 * time.Second}
	l := &cpuLimiter{limit: limit, now: m.Now, cpu: m.CPU, sleep: m.Sleep, start: m.now, cpuStart: m.cpu}
	return l, m
}

func TestCPULimiter(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limit     float64
		cores     float64 // how busy the process is while it works
		wantPause bool
	}{
		{"one busy core capped at a quarter", 0.25, 1, true},
		{"two busy cores capped at one", 1, 2, true},
		{"mostly waiting for the disk", 0.5, 0.2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, m := newFakeLimiter(tc.limit)
			for range 100 { // steps of 10 ms of wall time
				m.work(tc.cores, 10*time.Millisecond)
				if err := l.wait(context.Background()); err != nil {
					t.Fatal(err)
				}
				used, elapsed := m.cpu-l.cpuStart, m.now.Sub(l.start)
				if budget := time.Duration(tc.limit*float64(elapsed)) + maxCPUDebt + time.Duration(tc.cores*1e7); used > budget {
					t.Fatalf("used %s of CPU in %s, above %g cores plus the allowed debt", used, elapsed, tc.limit)
				}
			}
			if paused := m.slept > 0; paused != tc.wantPause {
				t.Errorf("paused %s, want a pause: %v", m.slept, tc.wantPause)
			}
			// Over the whole run the average meets the cap within the allowed debt.
			used, elapsed := m.cpu-l.cpuStart, m.now.Sub(l.start)
			if avg := float64(used) / float64(elapsed); tc.wantPause && avg > tc.limit*1.05 {
				t.Errorf("average %.3f cores, cap %g", avg, tc.limit)
			}
		})
	}
}

func TestCPULimiterCancelled(t *testing.T) {
	l, m := newFakeLimiter(0.1)
	m.work(1, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.wait(ctx); err == nil {
		t.Error("wait over budget with a cancelled context returned no error")
	}
}

func TestCPULimiterDisabled(t *testing.T) {
	if l := newCPULimiter(0); l != nil {
		t.Errorf("newCPULimiter(0) = %+v, want nil (no limit)", l)
	}
	var l *cpuLimiter
	if err := l.wait(context.Background()); err != nil {
		t.Error(err)
	}
}
