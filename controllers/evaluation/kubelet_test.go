package evaluation

import (
	"testing"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

func TestParseEvictionThreshold(t *testing.T) {
	cases := map[string]struct {
		in      string
		want    EvictionThreshold
		wantErr bool
	}{
		"empty: no threshold":           {in: ""},
		"percentage":                    {in: "10%", want: EvictionThreshold{Text: "10%", Fraction: 0.1}},
		"fractional percentage":         {in: "10.5%", want: EvictionThreshold{Text: "10.5%", Fraction: 0.105}},
		"float32 precision, as kubelet": {in: "7.123456789%", want: EvictionThreshold{Text: "7.123457%", Fraction: float32(7.123456789) / 100}},
		"0% disables":                   {in: "0%"},
		"100% disables":                 {in: "100%"},
		"0.0% is never met":             {in: "0.0%"},
		"100.0% is a threshold":         {in: "100.0%", want: EvictionThreshold{Text: "100%", Fraction: 1}},
		"repeated % trimmed as kubelet": {in: "10%%", want: EvictionThreshold{Text: "10%", Fraction: 0.1}},
		"over 100%":                     {in: "101%", wantErr: true},
		"negative percentage":           {in: "-1%", wantErr: true},
		"NaN percentage":                {in: "NaN%", wantErr: true},
		"infinite percentage":           {in: "Inf%", wantErr: true},
		"percent sign only":             {in: "%", wantErr: true},
		"spaces":                        {in: " 10%", wantErr: true},
		"binary quantity":               {in: "1Gi", want: EvictionThreshold{Text: "1Gi", Quantity: 1 << 30}},
		"canonical form":                {in: "1024Mi", want: EvictionThreshold{Text: "1Gi", Quantity: 1 << 30}},
		"decimal quantity":              {in: "500M", want: EvictionThreshold{Text: "500M", Quantity: 500_000_000}},
		"inodes count":                  {in: "100k", want: EvictionThreshold{Text: "100k", Quantity: 100_000}},
		"plain number":                  {in: "1073741824", want: EvictionThreshold{Text: "1073741824", Quantity: 1 << 30}},
		"fraction rounds up":            {in: "1.5", want: EvictionThreshold{Text: "1500m", Quantity: 2}},
		"zero quantity":                 {in: "0", wantErr: true},
		"negative quantity":             {in: "-1Gi", wantErr: true},
		"garbage":                       {in: "lots", wantErr: true},
		"unit typo":                     {in: "1GB", wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseEvictionThreshold(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseEvictionThreshold(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if d := diffOf(tc.want, got); d != "" {
				t.Errorf("ParseEvictionThreshold(%q) mismatch (-want +got):\n%s", tc.in, d)
			}
		})
	}
}

func TestEvictionThresholdOf(t *testing.T) {
	parse := func(s string) EvictionThreshold {
		th, err := ParseEvictionThreshold(s)
		if err != nil {
			t.Fatal(err)
		}
		return th
	}
	cases := []struct {
		threshold string
		capacity  int64
		want      int64
	}{
		{"", 100 * Gi, 0},
		{"1Gi", 100 * Gi, Gi},
		{"1Gi", 0, Gi},
		{"50%", 100 * Gi, 50 * Gi},
		// The kubelet multiplies by the float32 fraction: 10% is a few bytes over a tenth.
		{"10%", 100 * Gi, 10737418400},
		{"5%", 1_000_000, 50_000},
	}
	for _, tc := range cases {
		if got := parse(tc.threshold).Of(tc.capacity); got != tc.want {
			t.Errorf("%q.Of(%d) = %d, want %d", tc.threshold, tc.capacity, got, tc.want)
		}
	}
}

func TestKubeletThresholdsOf(t *testing.T) {
	def := DefaultKubeletThresholds()
	cases := map[string]struct {
		in      *v1alpha1.KubeletEviction
		want    KubeletThresholds
		wantErr bool
	}{
		"no report: the defaults": {want: def},
		"reported": {
			in: &v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile, NodefsAvailable: "2Gi", NodefsInodesFree: "4%", ImagefsAvailable: "20%"},
			want: KubeletThresholds{NodefsAvailable: EvictionThreshold{Text: "2Gi", Quantity: 2 * Gi}, NodefsInodesFree: EvictionThreshold{Text: "4%", Fraction: 0.04},
				ImagefsAvailable: EvictionThreshold{Text: "20%", Fraction: 0.2}},
		},
		"reported none at all": {in: &v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionFlags}},
		"a value that does not parse falls back to its default": {
			in:      &v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile, NodefsAvailable: "lots", ImagefsAvailable: "20%"},
			want:    KubeletThresholds{NodefsAvailable: def.NodefsAvailable, ImagefsAvailable: EvictionThreshold{Text: "20%", Fraction: 0.2}},
			wantErr: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := KubeletThresholdsOf(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error %v", err, tc.wantErr)
			}
			if d := diffOf(tc.want, got); d != "" {
				t.Errorf("KubeletThresholdsOf() mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestKubeletThresholdsFor(t *testing.T) {
	th := DefaultKubeletThresholds()
	for kfs, want := range map[v1alpha1.KubeletFilesystem]FilesystemThresholds{
		"":                      {Signal: "nodefs", Available: th.NodefsAvailable, InodesFree: th.NodefsInodesFree},
		v1alpha1.KubeletNodefs:  {Signal: "nodefs", Available: th.NodefsAvailable, InodesFree: th.NodefsInodesFree},
		v1alpha1.KubeletImagefs: {Signal: "imagefs", Available: th.ImagefsAvailable, InodesFree: th.ImagefsInodesFree},
	} {
		if d := diffOf(want, th.For(v1alpha1.FilesystemUsage{Path: "/", KubeletFilesystem: kfs})); d != "" {
			t.Errorf("For(%q) mismatch (-want +got):\n%s", kfs, d)
		}
	}
}
