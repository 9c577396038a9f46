package evaluation

import (
	"math"
	"testing"
	"time"
)

func TestHumanBytes(t *testing.T) {
	cases := []struct {
		in   int64
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{999, "999B"},
		{1023, "1023B"},
		{1024, "1Ki"},
		{1536, "1.5Ki"},
		{1024*1024 - 1, "1Mi"}, // rounds up to 1024Ki: written in the next unit
		{512 * Mi, "512Mi"},
		{4509715660, "4.2Gi"},
		{4617089843, "4.3Gi"},
		{4*Gi + 50*Mi, "4Gi"}, // 4.049Gi
		{4*Gi + 52*Mi, "4.1Gi"},
		{1 << 40, "1Ti"},
		{1 << 50, "1Pi"},
		{math.MaxInt64, "8Ei"},
		{-1536, "-1.5Ki"},
		{math.MinInt64, "-8Ei"},
	}
	for _, tc := range cases {
		if got := HumanBytes(tc.in); got != tc.want {
			t.Errorf("HumanBytes(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestApproxDuration(t *testing.T) {
	cases := []struct {
		in   time.Duration
		want string
	}{
		{0, "<1m"},
		{59 * time.Second, "<1m"},
		{time.Minute, "~1m"},
		{10*time.Minute + 14*time.Second, "~10m"},
		{12*time.Minute + 30*time.Second, "~13m"},
		{59 * time.Minute, "~59m"},
		{time.Hour, "~1h"},
		{102*time.Minute + 24*time.Second, "~1h42m"},
		{47*time.Hour + 59*time.Minute, "~47h59m"},
		{48 * time.Hour, "~2d"},
		{80 * time.Hour, "~3d"},
		{time.Duration(math.MaxInt64), "~106752d"},
	}
	for _, tc := range cases {
		if got := approxDuration(tc.in); got != tc.want {
			t.Errorf("approxDuration(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCompactDuration(t *testing.T) {
	cases := []struct {
		in   time.Duration
		want string
	}{
		{15 * time.Minute, "15m"},
		{90 * time.Minute, "1h30m"},
		{24 * time.Hour, "24h"},
		{45 * time.Second, "45s"},
		{time.Hour + 30*time.Second, "1h0m30s"},
		{0, "0s"},
	}
	for _, tc := range cases {
		if got := compactDuration(tc.in); got != tc.want {
			t.Errorf("compactDuration(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTimeToReach(t *testing.T) {
	cases := map[string]struct {
		remaining, rate int64
		want            time.Duration
		wantOK          bool
	}{
		"growing":             {remaining: 120 * Mi, rate: 120 * Mi, want: time.Minute, wantOK: true},
		"already there":       {remaining: 0, rate: Mi, want: 0, wantOK: true},
		"past it":             {remaining: -Gi, rate: Mi, want: 0, wantOK: true},
		"not growing":         {remaining: Gi, rate: 0},
		"shrinking":           {remaining: Gi, rate: -Mi},
		"saturates":           {remaining: math.MaxInt64, rate: 1, want: time.Duration(math.MaxInt64), wantOK: true},
		"fraction of minutes": {remaining: 3, rate: 2, want: 90 * time.Second, wantOK: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := timeToReach(tc.remaining, tc.rate)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("timeToReach(%d, %d) = %s, %v; want %s, %v", tc.remaining, tc.rate, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
