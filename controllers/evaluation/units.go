package evaluation

import (
	"math"
	"strconv"
	"strings"
	"time"
)

var binaryUnits = [...]string{"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}

// HumanBytes formats n in binary units with at most one decimal, the way people read sizes in
// messages: 999B, 1Ki, 4.2Gi, 512Mi. A value that rounds up to 1024 of a unit is written in
// the next unit (1048575 is 1Mi, not 1024Ki). Negative values get a leading "-".
func HumanBytes(n int64) string {
	if n < 0 {
		// -math.MinInt64 overflows; format its magnitude through uint64.
		return "-" + humanBytes(uint64(-(n+1))+1)
	}
	return humanBytes(uint64(n))
}

func humanBytes(n uint64) string {
	if n < 1024 {
		return strconv.FormatUint(n, 10) + "B"
	}
	v := float64(n)
	i := -1
	for v >= 1024 && i < len(binaryUnits)-1 {
		v /= 1024
		i++
	}
	r := math.Round(v*10) / 10
	if r >= 1024 && i < len(binaryUnits)-1 {
		r = math.Round(r/1024*10) / 10
		i++
	}
	return strconv.FormatFloat(r, 'f', -1, 64) + binaryUnits[i]
}

// humanRate formats a growth rate in bytes per minute.
func humanRate(perMinute int64) string {
	return HumanBytes(perMinute) + "/min"
}

// approxDuration formats an estimate: "<1m", "~12m", "~2h5m", "~3d".
func approxDuration(d time.Duration) string {
	if d < time.Minute {
		return "<1m"
	}
	m := int64(d.Round(time.Minute) / time.Minute)
	itoa := func(n int64) string { return strconv.FormatInt(n, 10) }
	switch {
	case m < 60:
		return "~" + itoa(m) + "m"
	case m < 48*60:
		if m%60 == 0 {
			return "~" + itoa(m/60) + "h"
		}
		return "~" + itoa(m/60) + "h" + itoa(m%60) + "m"
	default:
		return "~" + itoa((m+12*60)/(24*60)) + "d"
	}
}

// compactDuration formats a configured duration without trailing zero units: 15m, 1h30m, 24h.
func compactDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// percent formats part/whole as a percentage with one decimal.
func percent(part, whole int64) string {
	if whole <= 0 {
		return "?%"
	}
	return strconv.FormatFloat(float64(part)*100/float64(whole), 'f', 1, 64) + "%"
}

// percentOf returns floor(whole*pct/100) without overflowing for any realistic whole.
func percentOf(whole int64, pct int32) int64 {
	p := int64(pct)
	return whole/100*p + whole%100*p/100
}

// timeToReach estimates how long a layer growing perMinute bytes a minute takes to grow by
// remaining bytes. ok is false when it never does (perMinute <= 0). The estimate saturates at
// the largest time.Duration.
func timeToReach(remaining, perMinute int64) (d time.Duration, ok bool) {
	if perMinute <= 0 {
		return 0, false
	}
	if remaining <= 0 {
		return 0, true
	}
	ns := float64(remaining) / float64(perMinute) * float64(time.Minute)
	if ns >= float64(math.MaxInt64) {
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(ns), true
}

// ageString formats an observed age: exact seconds under a minute, rounded above.
func ageString(d time.Duration) string {
	if d < time.Minute {
		return compactDuration(d.Round(time.Second))
	}
	return strings.TrimPrefix(approxDuration(d), "~")
}
