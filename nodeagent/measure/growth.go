package measure

import (
	"math"
	"time"
)

// Growth smooths a byte count's rate of change across passes with an exponentially weighted
// moving average whose weight depends on the time between samples (half-life HalfLife), so
// irregular pass intervals are handled.
type Growth struct {
	HalfLife time.Duration

	last     int64
	lastTime time.Time
	rate     float64 // bytes per minute
	samples  int
}

// Observe records a sample and returns the smoothed rate in bytes per minute. The first
// sample has no rate (ok=false).
func (g *Growth) Observe(bytes int64, at time.Time) (perMinute int64, ok bool) {
	defer func() { g.last, g.lastTime = bytes, at; g.samples++ }()
	if g.samples == 0 {
		return 0, false
	}
	dt := at.Sub(g.lastTime)
	if dt <= 0 {
		return int64(g.rate), g.samples > 1
	}
	inst := float64(bytes-g.last) / dt.Minutes()
	if g.samples == 1 {
		g.rate = inst
	} else {
		hl := g.HalfLife
		if hl <= 0 {
			hl = 5 * time.Minute
		}
		// weight of the new sample: 1 - 2^(-dt/halfLife)
		w := 1 - math.Exp2(-dt.Seconds()/hl.Seconds())
		g.rate = g.rate + w*(inst-g.rate)
	}
	return int64(g.rate), true
}

// Rate returns the current smoothed rate.
func (g *Growth) Rate() (int64, bool) { return int64(g.rate), g.samples > 1 }
