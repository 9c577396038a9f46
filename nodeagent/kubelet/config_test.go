package kubelet

import (
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

const header = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"

func TestDecodeConfig(t *testing.T) {
	cases := map[string]struct {
		data    string
		want    Config
		wantErr string // a substring; "" for success
	}{
		"no evictionHard":    {data: header + "cgroupDriver: systemd\n"},
		"null evictionHard":  {data: header + "evictionHard: null\n", want: Config{EvictionHard: Null}},
		"empty evictionHard": {data: header + "evictionHard: {}\n", want: Config{EvictionHard: Set, Signals: map[string]*string{}}},
		"signals, percent and quantity, an entry set to null": {
			data: header + "evictionHard:\n  nodefs.available: 10.5%\n  imagefs.available: \"2Gi\"\n  memory.available: ~\n",
			want: Config{EvictionHard: Set, Signals: map[string]*string{"nodefs.available": ptr.To("10.5%"), "imagefs.available": ptr.To("2Gi"), "memory.available": nil}},
		},
		"mergeDefaultEvictionSettings": {
			data: header + "mergeDefaultEvictionSettings: true\nevictionHard:\n  memory.available: 200Mi\n",
			want: Config{EvictionHard: Set, Signals: map[string]*string{"memory.available": ptr.To("200Mi")}, MergeDefaultEvictionSettings: ptr.To(true)},
		},
		"mergeDefaultEvictionSettings null": {data: header + "mergeDefaultEvictionSettings: null\n"},
		"JSON": {
			data: `{"apiVersion":"kubelet.config.k8s.io/v1beta1","kind":"KubeletConfiguration","evictionHard":{"nodefs.available":"1Gi"}}`,
			want: Config{EvictionHard: Set, Signals: map[string]*string{"nodefs.available": ptr.To("1Gi")}},
		},
		"unknown keys ignored, as the kubelet's lenient decoding does": {
			data: header + "someFutureField: {a: 1}\nevictionHard:\n  nodefs.available: 7%\n",
			want: Config{EvictionHard: Set, Signals: map[string]*string{"nodefs.available": ptr.To("7%")}},
		},
		"keys are case-sensitive": {data: header + "EvictionHard:\n  nodefs.available: 7%\n"},
		"a duplicate key: the last one": {
			data: header + "evictionHard:\n  nodefs.available: 7%\nevictionHard:\n  nodefs.available: 8%\n",
			want: Config{EvictionHard: Set, Signals: map[string]*string{"nodefs.available": ptr.To("8%")}},
		},

		"empty file":             {data: "", wantErr: "empty"},
		"only whitespace":        {data: "  \n", wantErr: "not an object"},
		"a list":                 {data: "- a\n- b\n", wantErr: "not an object"},
		"bad YAML":               {data: header + "evictionHard: [\n", wantErr: "not YAML or JSON"},
		"tabs in YAML":           {data: header + "evictionHard:\n\tnodefs.available: 10%\n", wantErr: "not YAML or JSON"},
		"no kind":                {data: "apiVersion: kubelet.config.k8s.io/v1beta1\n", wantErr: `kind ""`},
		"another kind":           {data: "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeProxyConfiguration\n", wantErr: "KubeProxyConfiguration"},
		"another version":        {data: "apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\n", wantErr: "kubelet.config.k8s.io/v1"},
		"evictionHard a string":  {data: header + "evictionHard: nodefs.available<10%\n", wantErr: "not a map"},
		"a number threshold":     {data: header + "evictionHard:\n  memory.available: 100\n", wantErr: `evictionHard["memory.available"] is 100`},
		"a boolean threshold":    {data: header + "evictionHard:\n  nodefs.available: yes\n", wantErr: "is true, not a string"},
		"merge setting a string": {data: header + "mergeDefaultEvictionSettings: \"true\"\n", wantErr: "not a boolean"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeConfig([]byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("DecodeConfig() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeConfig() error = %v", err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("DecodeConfig() mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestCombine(t *testing.T) {
	set := func(kv ...string) *Config {
		c := &Config{EvictionHard: Set, Signals: map[string]*string{}}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "null" {
				c.Signals[kv[i]] = nil
			} else {
				c.Signals[kv[i]] = ptr.To(kv[i+1])
			}
		}
		return c
	}
	merging := func(c *Config) *Config { c.MergeDefaultEvictionSettings = ptr.To(true); return c }
	withDefaults := func(kv ...string) map[string]string {
		m := maps.Clone(DefaultEvictionHard)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := map[string]struct {
		flags   Flags
		config  *Config
		dropins []*Config
		want    map[string]string
		source  v1alpha1.KubeletEvictionSource
		note    string
	}{
		"no --config, --config-dir or --eviction-hard: no thresholds at all": {
			source: v1alpha1.KubeletEvictionFlags, note: "the kubelet has no hard eviction threshold"},
		"--eviction-hard alone": {flags: Flags{EvictionHard: map[string]string{"nodefs.available": "5%"}},
			want: map[string]string{"nodefs.available": "5%"}, source: v1alpha1.KubeletEvictionFlags},
		"a config without evictionHard: the defaults": {config: &Config{},
			want: withDefaults(), source: v1alpha1.KubeletEvictionConfigFile, note: "evictionHard unset: the kubelet's defaults"},
		"a config with a null evictionHard: the defaults": {config: &Config{EvictionHard: Null},
			want: withDefaults(), source: v1alpha1.KubeletEvictionConfigFile},
		"a config with one signal: the others have no threshold": {config: set("memory.available", "200Mi"),
			want: map[string]string{"memory.available": "200Mi"}, source: v1alpha1.KubeletEvictionConfigFile,
			note: "a signal it leaves out has no threshold"},
		"a config with an empty evictionHard: no threshold": {config: set(),
			want: map[string]string{}, source: v1alpha1.KubeletEvictionConfigFile},
		"mergeDefaultEvictionSettings fills in the signals left out": {config: merging(set("nodefs.available", "20%")),
			want: withDefaults("nodefs.available", "20%"), source: v1alpha1.KubeletEvictionConfigFile, note: "mergeDefaultEvictionSettings"},
		"mergeDefaultEvictionSettings false": {config: func() *Config {
			c := set("nodefs.available", "20%")
			c.MergeDefaultEvictionSettings = ptr.To(false)
			return c
		}(),
			want: map[string]string{"nodefs.available": "20%"}, source: v1alpha1.KubeletEvictionConfigFile},
		"a config's null signal decodes as empty, which the kubelet rejects": {config: set("nodefs.available", "null"),
			want: map[string]string{"nodefs.available": ""}, source: v1alpha1.KubeletEvictionConfigFile},
		"drop-ins merge over the defaults, in order, null deleting": {
			flags:  Flags{ConfigDir: "/d"},
			config: &Config{},
			dropins: []*Config{set("nodefs.available", "12%", "imagefs.available", "20%"), {}, set("nodefs.available", "14%", "memory.available", "null"),
				merging(set("imagefs.inodesFree", "null"))},
			want:   map[string]string{"nodefs.available": "14%", "nodefs.inodesFree": "5%", "imagefs.available": "20%"},
			source: v1alpha1.KubeletEvictionConfigFile, note: "3 drop-ins change evictionHard",
		},
		"a drop-in's mergeDefaultEvictionSettings merges nothing": {
			flags: Flags{ConfigDir: "/d"}, config: set("memory.available", "1Gi"), dropins: []*Config{merging(set("nodefs.available", "3%"))},
			want: map[string]string{"memory.available": "1Gi", "nodefs.available": "3%"}, source: v1alpha1.KubeletEvictionConfigFile,
		},
		"a drop-in's null evictionHard removes every threshold": {
			flags: Flags{ConfigDir: "/d"}, config: &Config{}, dropins: []*Config{{EvictionHard: Null}},
			source: v1alpha1.KubeletEvictionConfigFile,
		},
		"--config-dir without --config: drop-ins only, no defaults": {
			flags: Flags{ConfigDir: "/d"}, dropins: []*Config{set("nodefs.available", "3%")},
			want: map[string]string{"nodefs.available": "3%"}, source: v1alpha1.KubeletEvictionConfigFile, note: "no --config: the kubelet's defaults do not apply",
		},
		"--config-dir without --config nor evictionHard: no thresholds": {
			flags: Flags{ConfigDir: "/d"}, dropins: []*Config{{}},
			source: v1alpha1.KubeletEvictionConfigFile, note: "the kubelet has no hard eviction threshold",
		},
		"--eviction-hard replaces the file and drop-ins entirely": {
			flags:  Flags{ConfigDir: "/d", EvictionHard: map[string]string{"memory.available": "1Gi"}},
			config: merging(set("nodefs.available", "20%")), dropins: []*Config{set("imagefs.available", "30%")},
			want: map[string]string{"memory.available": "1Gi"}, source: v1alpha1.KubeletEvictionFlags, note: "--eviction-hard replaces",
		},
		"an empty --eviction-hard removes every threshold": {
			flags: Flags{EvictionHard: map[string]string{}}, config: &Config{},
			want: map[string]string{}, source: v1alpha1.KubeletEvictionFlags,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var dropins []Config
			for _, d := range tc.dropins {
				dropins = append(dropins, *d)
			}
			got := Combine(tc.flags, tc.config, dropins)
			if len(got.EvictionHard) != 0 || len(tc.want) != 0 {
				if d := cmp.Diff(tc.want, got.EvictionHard); d != "" {
					t.Errorf("evictionHard mismatch (-want +got):\n%s", d)
				}
			}
			if got.Source != tc.source {
				t.Errorf("source = %s, want %s", got.Source, tc.source)
			}
			if !strings.Contains(got.Note, tc.note) {
				t.Errorf("note = %q, want it to contain %q", got.Note, tc.note)
			}
		})
	}
	// Combine never changes the package's defaults.
	if d := cmp.Diff(map[string]string{"memory.available": "100Mi", "nodefs.available": "10%", "nodefs.inodesFree": "5%",
		"imagefs.available": "15%", "imagefs.inodesFree": "5%"}, DefaultEvictionHard); d != "" {
		t.Errorf("DefaultEvictionHard changed (-want +got):\n%s", d)
	}
}

func TestThresholds(t *testing.T) {
	cases := map[string]struct {
		hard    map[string]string
		want    v1alpha1.KubeletEviction
		wantErr string
	}{
		"none": {want: v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile}},
		"the filesystem signals, normalized; others left out": {
			hard: map[string]string{"memory.available": "100Mi", "pid.available": "5%", "nodefs.available": "10.50%", "nodefs.inodesFree": "5%%",
				"imagefs.available": "2048Mi", "imagefs.inodesFree": "100k"},
			want: v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile, NodefsAvailable: "10.5%", NodefsInodesFree: "5%",
				ImagefsAvailable: "2Gi", ImagefsInodesFree: "100k"},
		},
		"0% and 100% disable a signal": {
			hard: map[string]string{"nodefs.available": "0%", "imagefs.available": "100%"},
			want: v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile},
		},
		"an empty value":      {hard: map[string]string{"nodefs.available": ""}, wantErr: "nodefs.available: empty threshold"},
		"a value over 100%":   {hard: map[string]string{"imagefs.available": "150%"}, wantErr: "imagefs.available"},
		"not a quantity":      {hard: map[string]string{"nodefs.inodesFree": "lots"}, wantErr: "nodefs.inodesFree"},
		"a negative quantity": {hard: map[string]string{"nodefs.available": "-1Gi"}, wantErr: "must be positive"},
		"an unknown signal is not ours to judge": {hard: map[string]string{"future.signal": "x"},
			want: v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Thresholds(Effective{EvictionHard: tc.hard, Source: v1alpha1.KubeletEvictionConfigFile})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Thresholds() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Thresholds() mismatch (-want +got):\n%s", d)
			}
		})
	}
}
