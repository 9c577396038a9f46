package scanner

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// cpuLimiter paces the workers of a pass so that the CPU time the whole process uses while
// the pass runs stays within limit cores times the wall time elapsed since the pass started.
// It measures the process, not the workers, so the Go runtime's own work (garbage
// collection, scheduling) counts, and concurrent passes in one process share the budget.
type cpuLimiter struct {
	limit float64
	now   func() time.Time
	cpu   func() time.Duration // CPU time used by the process so far
	sleep func(context.Context, time.Duration) error

	start    time.Time
	cpuStart time.Duration
}

func newCPULimiter(limit float64) *cpuLimiter {
	if limit <= 0 {
		return nil
	}
	l := &cpuLimiter{limit: limit, now: time.Now, cpu: processCPU, sleep: sleepCtx}
	l.start, l.cpuStart = l.now(), l.cpu()
	return l
}

// maxCPUDebt is how far ahead of its budget the process may run before the workers pause,
// and then pause until the debt is paid: few long pauses cost less than many short ones.
const maxCPUDebt = 10 * time.Millisecond

// wait pauses while the process is more than maxCPUDebt ahead of its budget (or until ctx
// is done).
func (l *cpuLimiter) wait(ctx context.Context) error {
	if l == nil {
		return nil
	}
	used := l.cpu() - l.cpuStart
	allowed := time.Duration(float64(l.now().Sub(l.start)) * l.limit)
	if debt := used - allowed; debt > maxCPUDebt {
		return l.sleep(ctx, time.Duration(float64(debt)/l.limit))
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errList is the bounded list of non-fatal problems of a pass.
type errList struct {
	mu      sync.Mutex
	max     int
	list    []string
	dropped int
}

func (e *errList) add(msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.list) < e.max {
		e.list = append(e.list, msg)
		return
	}
	e.dropped++
}

func (e *errList) result() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := append([]string(nil), e.list...)
	if e.dropped > 0 {
		out = append(out, fmt.Sprintf("and %d more problems not listed", e.dropped))
	}
	return out
}
