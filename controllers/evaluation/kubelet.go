package evaluation

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// EvictionThreshold is one of the kubelet's hard eviction thresholds on a filesystem signal
// (nodefs.available, nodefs.inodesFree, imagefs.available, imagefs.inodesFree): the kubelet
// evicts pods while the free amount is below it. The zero value is no threshold.
type EvictionThreshold struct {
	// Text is the threshold as the kubelet expresses it, normalized: "10%", "10.5%", "1Gi",
	// "100k". Empty for no threshold.
	Text string
	// Fraction is the share of the filesystem's capacity (0.1 for "10%"), held with the
	// kubelet's float32 precision. Used when Quantity is zero.
	Fraction float32
	// Quantity is an absolute amount of bytes (or inodes), rounded up to a whole one.
	Quantity int64
}

// IsZero reports whether t is no threshold.
func (t EvictionThreshold) IsZero() bool { return t.Quantity <= 0 && t.Fraction <= 0 }

// Of returns the free amount under which the kubelet evicts on a filesystem of the given
// capacity (bytes, or inodes for an inodesFree threshold), computed as the kubelet computes it
// (pkg/kubelet/eviction/api GetThresholdQuantity). It returns 0 for no threshold.
func (t EvictionThreshold) Of(capacity int64) int64 {
	switch {
	case t.Quantity > 0:
		return t.Quantity
	case t.Fraction > 0:
		return int64(float64(capacity) * float64(t.Fraction))
	}
	return 0
}

// ParseEvictionThreshold parses a threshold value the way the kubelet does (pkg/kubelet/eviction
// parseThresholdStatement): a value ending in "%" is a share of the capacity between 0% and
// 100%, where exactly "0%" and "100%" disable the threshold; anything else is a positive
// quantity ("1Gi", "500M", "100k"). "" is no threshold. The kubelet refuses to start with a
// value this rejects (it accepts "NaN%", which is rejected here as meaningless).
func ParseEvictionThreshold(s string) (EvictionThreshold, error) {
	if s == "" {
		return EvictionThreshold{}, nil
	}
	if strings.HasSuffix(s, "%") {
		if s == "0%" || s == "100%" {
			return EvictionThreshold{}, nil
		}
		v, err := strconv.ParseFloat(strings.TrimRight(s, "%"), 32)
		if err != nil {
			return EvictionThreshold{}, fmt.Errorf("threshold %q is not a percentage", s)
		}
		if math.IsNaN(v) || v < 0 || v > 100 {
			return EvictionThreshold{}, fmt.Errorf("threshold %q must be between 0%% and 100%%", s)
		}
		if v == 0 {
			return EvictionThreshold{}, nil // "0.0%": never met, like no threshold
		}
		return EvictionThreshold{Text: strconv.FormatFloat(v, 'f', -1, 32) + "%", Fraction: float32(v) / 100}, nil
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return EvictionThreshold{}, fmt.Errorf("threshold %q is neither a percentage nor a quantity", s)
	}
	if q.Sign() <= 0 {
		return EvictionThreshold{}, fmt.Errorf("threshold %q must be positive", s)
	}
	return EvictionThreshold{Text: q.String(), Quantity: q.Value()}, nil
}

// KubeletThresholds are a kubelet's hard eviction thresholds for the filesystem signals.
type KubeletThresholds struct {
	NodefsAvailable, NodefsInodesFree, ImagefsAvailable, ImagefsInodesFree EvictionThreshold
}

// Kubelet hard eviction defaults for the filesystem signals (Linux, Kubernetes 1.33 and
// later: pkg/kubelet/eviction DefaultEvictionHard).
const (
	DefaultNodefsAvailable   = "10%"
	DefaultNodefsInodesFree  = "5%"
	DefaultImagefsAvailable  = "15%"
	DefaultImagefsInodesFree = "5%"
)

// DefaultKubeletThresholds are the kubelet's defaults, assumed for a node that reports none.
func DefaultKubeletThresholds() KubeletThresholds {
	must := func(s string) EvictionThreshold {
		t, err := ParseEvictionThreshold(s)
		if err != nil {
			panic(err)
		}
		return t
	}
	return KubeletThresholds{NodefsAvailable: must(DefaultNodefsAvailable), NodefsInodesFree: must(DefaultNodefsInodesFree),
		ImagefsAvailable: must(DefaultImagefsAvailable), ImagefsInodesFree: must(DefaultImagefsInodesFree)}
}

// KubeletThresholdsOf reads a node's reported thresholds. A nil report means the defaults. A
// value that does not parse (the agent never writes one) is replaced by its default, and the
// error names it.
func KubeletThresholdsOf(ke *v1alpha1.KubeletEviction) (KubeletThresholds, error) {
	def := DefaultKubeletThresholds()
	if ke == nil {
		return def, nil
	}
	var out KubeletThresholds
	var errs []error
	for _, f := range []struct {
		signal string
		text   string
		dst    *EvictionThreshold
		def    EvictionThreshold
	}{
		{"nodefs.available", ke.NodefsAvailable, &out.NodefsAvailable, def.NodefsAvailable},
		{"nodefs.inodesFree", ke.NodefsInodesFree, &out.NodefsInodesFree, def.NodefsInodesFree},
		{"imagefs.available", ke.ImagefsAvailable, &out.ImagefsAvailable, def.ImagefsAvailable},
		{"imagefs.inodesFree", ke.ImagefsInodesFree, &out.ImagefsInodesFree, def.ImagefsInodesFree},
	} {
		t, err := ParseEvictionThreshold(f.text)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.signal, err))
			t = f.def
		}
		*f.dst = t
	}
	return out, errors.Join(errs...)
}

// FilesystemThresholds are the kubelet's thresholds that apply to the writable layers on one
// filesystem.
type FilesystemThresholds struct {
	// Signal is "nodefs" or "imagefs": which of the kubelet's filesystems it is.
	Signal string
	// Available and InodesFree are the thresholds on free bytes and free inodes.
	Available, InodesFree EvictionThreshold
}

// For returns the thresholds the kubelet applies to the writable layers on fs: its imagefs
// thresholds on a separate runtime filesystem (the kubelet treats the writable layers as part
// of the image filesystem then), its nodefs thresholds otherwise, also when the agent could
// not tell.
func (k KubeletThresholds) For(fs v1alpha1.FilesystemUsage) FilesystemThresholds {
	if fs.KubeletFilesystem == v1alpha1.KubeletImagefs {
		return FilesystemThresholds{Signal: "imagefs", Available: k.ImagefsAvailable, InodesFree: k.ImagefsInodesFree}
	}
	return FilesystemThresholds{Signal: "nodefs", Available: k.NodefsAvailable, InodesFree: k.NodefsInodesFree}
}

// kubeletThreshold words the kubelet's threshold in a node-pressure message, " (the kubelet
// evicts under nodefs.available 10%)", or nothing when the kubelet has none.
func kubeletThreshold(w func(string) (int, error), signal string, t EvictionThreshold) {
	if t.IsZero() {
		return
	}
	w(" (the kubelet evicts under ")
	w(signal)
	w(" ")
	w(t.Text)
	w(")")
}
