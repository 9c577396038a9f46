package measure

import (
	"testing"
	"time"
)

func TestGrowth(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	type sample struct {
		bytes int64
		at    time.Duration
	}
	cases := []struct {
		name     string
		halfLife time.Duration
		samples  []sample
		want     int64
		wantOK   bool
	}{
		{name: "one sample has no rate", samples: []sample{{100, 0}}, wantOK: false},
		{name: "two samples give the instant rate", samples: []sample{{0, 0}, {60 << 20, time.Minute}}, want: 60 << 20, wantOK: true},
		{name: "steady growth stays exact", halfLife: time.Minute,
			samples: []sample{{0, 0}, {10, time.Minute}, {20, 2 * time.Minute}, {30, 3 * time.Minute}}, want: 10, wantOK: true},
		{name: "shrinking is negative", samples: []sample{{1000, 0}, {400, 2 * time.Minute}}, want: -300, wantOK: true},
		{name: "a sample one half-life later moves halfway", halfLife: time.Minute,
			samples: []sample{{0, 0}, {100, time.Minute}, {100, 2 * time.Minute}}, want: 50, wantOK: true},
		{name: "a sample at the same time changes nothing", samples: []sample{{0, 0}, {100, time.Minute}, {500, time.Minute}}, want: 100, wantOK: true},
		{name: "irregular intervals are weighted by time", halfLife: time.Minute,
			samples: []sample{{0, 0}, {100, time.Minute}, {100, 11 * time.Minute}}, want: 0, wantOK: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := Growth{HalfLife: tc.halfLife}
			var got int64
			var ok bool
			for _, s := range tc.samples {
				got, ok = g.Observe(s.bytes, t0.Add(s.at))
			}
			if ok != tc.wantOK || got != tc.want {
				t.Errorf("rate = %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
