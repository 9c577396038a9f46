package kubelet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
)

// The KubeletConfiguration's group, version and kind: the only ones the kubelet accepts in its
// --config file and drop-ins.
const (
	ConfigAPIVersion = "kubelet.config.k8s.io/v1beta1"
	ConfigKind       = "KubeletConfiguration"
)

// DefaultEvictionHard are the kubelet's hard eviction thresholds when its configuration file
// leaves evictionHard unset (Linux, Kubernetes 1.33 and later: pkg/kubelet/eviction).
var DefaultEvictionHard = map[string]string{
	"memory.available":   "100Mi",
	"nodefs.available":   evaluation.DefaultNodefsAvailable,
	"nodefs.inodesFree":  evaluation.DefaultNodefsInodesFree,
	"imagefs.available":  evaluation.DefaultImagefsAvailable,
	"imagefs.inodesFree": evaluation.DefaultImagefsInodesFree,
}

// Presence says whether a configuration file sets a key, and how.
type Presence int

const (
	// Absent: the file does not have the key.
	Absent Presence = iota
	// Null: the key's value is null (in a drop-in, it deletes the value merged so far).
	Null
	// Set: the key has a value.
	Set
)

// Config is what one KubeletConfiguration file, the --config file or a drop-in, says about
// hard eviction.
type Config struct {
	// EvictionHard says whether the file sets evictionHard; Signals are its entries when
	// Set, a nil value for a signal set to null.
	EvictionHard Presence
	Signals      map[string]*string
	// MergeDefaultEvictionSettings is mergeDefaultEvictionSettings (nil when absent or null).
	MergeDefaultEvictionSettings *bool
}

// DecodeConfig reads a KubeletConfiguration file, YAML or JSON, as the kubelet's lenient
// decoder does: apiVersion and kind must name a v1beta1 KubeletConfiguration, unknown keys
// are ignored, keys are case-sensitive, evictionHard must map signals to strings (or null)
// and mergeDefaultEvictionSettings must be a boolean. The kubelet refuses to start on a file
// this rejects.
func DecodeConfig(data []byte) (Config, error) {
	if len(data) == 0 {
		return Config{}, errors.New("the file is empty")
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return Config{}, fmt.Errorf("not YAML or JSON: %w", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil || top == nil {
		return Config{}, errors.New("not a KubeletConfiguration: the document is not an object")
	}
	var apiVersion, kind string
	_ = json.Unmarshal(top["apiVersion"], &apiVersion)
	_ = json.Unmarshal(top["kind"], &kind)
	if apiVersion != ConfigAPIVersion || kind != ConfigKind {
		return Config{}, fmt.Errorf("apiVersion %q, kind %q: want %s %s", apiVersion, kind, ConfigAPIVersion, ConfigKind)
	}
	var c Config
	if raw, ok := top["evictionHard"]; ok {
		if isNull(raw) {
			c.EvictionHard = Null
		} else {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(raw, &m); err != nil {
				return Config{}, errors.New("evictionHard is not a map of signals to thresholds")
			}
			c.EvictionHard, c.Signals = Set, make(map[string]*string, len(m))
			for k, v := range m {
				if isNull(v) {
					c.Signals[k] = nil
					continue
				}
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return Config{}, fmt.Errorf("evictionHard[%q] is %s, not a string", k, v)
				}
				c.Signals[k] = &s
			}
		}
	}
	if raw, ok := top["mergeDefaultEvictionSettings"]; ok && !isNull(raw) {
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return Config{}, fmt.Errorf("mergeDefaultEvictionSettings is %s, not a boolean", raw)
		}
		c.MergeDefaultEvictionSettings = &b
	}
	return c, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// Effective is the kubelet's hard eviction configuration once flags, files and defaults are
// combined.
type Effective struct {
	// EvictionHard maps signals to thresholds; nil or empty: no hard eviction threshold.
	EvictionHard map[string]string
	// Source says where EvictionHard comes from.
	Source v1alpha1.KubeletEvictionSource
	// Note says, for people, how it was decided.
	Note string
}

// Combine computes the kubelet's evictionHard from its flags, its --config file (nil when
// --config is not given) and its --config-dir drop-ins in the kubelet's order, as
// cmd/kubelet/app/server.go does:
//
//  1. the --config file's evictionHard; unset (or null) it is the kubelet's defaults, set it
//     gets the defaults of the signals it leaves out only with mergeDefaultEvictionSettings;
//     without --config there is none (no defaults: those come with the file only);
//  2. each drop-in is a JSON merge patch: its evictionHard entries replace or add signals, a
//     null entry deletes one, a null evictionHard deletes them all; a drop-in's
//     mergeDefaultEvictionSettings merges nothing;
//  3. --eviction-hard, when given, replaces the result entirely.
func Combine(f Flags, config *Config, dropins []Config) Effective {
	var hard map[string]string
	var notes []string
	if config != nil {
		switch config.EvictionHard {
		case Absent, Null:
			hard = maps.Clone(DefaultEvictionHard)
			notes = append(notes, "evictionHard unset: the kubelet's defaults")
		case Set:
			hard = map[string]string{}
			for k, v := range config.Signals {
				hard[k] = ""
				if v != nil {
					hard[k] = *v
				}
			}
			if config.MergeDefaultEvictionSettings != nil && *config.MergeDefaultEvictionSettings {
				for k, v := range DefaultEvictionHard {
					if _, ok := hard[k]; !ok {
						hard[k] = v
					}
				}
				notes = append(notes, "evictionHard merged with the kubelet's defaults (mergeDefaultEvictionSettings)")
			} else {
				notes = append(notes, "evictionHard set without mergeDefaultEvictionSettings: a signal it leaves out has no threshold")
			}
		}
	}
	changed := 0
	for _, d := range dropins {
		switch d.EvictionHard {
		case Null:
			hard = nil
			changed++
		case Set:
			if hard == nil {
				hard = map[string]string{}
			}
			for k, v := range d.Signals {
				if v == nil {
					delete(hard, k)
				} else {
					hard[k] = *v
				}
			}
			changed++
		}
	}
	if changed > 0 {
		notes = append(notes, fmt.Sprintf("%d drop-ins change evictionHard", changed))
	}
	switch {
	case f.EvictionHard != nil:
		return Effective{EvictionHard: maps.Clone(f.EvictionHard), Source: v1alpha1.KubeletEvictionFlags,
			Note: "--eviction-hard replaces the configuration's thresholds"}
	case config == nil && f.ConfigDir == "":
		return Effective{Source: v1alpha1.KubeletEvictionFlags,
			Note: "no --config, --config-dir or --eviction-hard: the kubelet has no hard eviction threshold"}
	case config == nil && changed == 0:
		notes = append(notes, "no --config and no drop-in sets evictionHard: the kubelet has no hard eviction threshold")
	case config == nil:
		notes = append(notes, "no --config: the kubelet's defaults do not apply")
	}
	return Effective{EvictionHard: hard, Source: v1alpha1.KubeletEvictionConfigFile, Note: strings.Join(notes, "; ")}
}

// maxThreshold bounds a reported threshold, as the CRD does.
const maxThreshold = 32

// Thresholds turns the filesystem signals of an effective evictionHard into the report's
// fields, normalized. A value the kubelet would not have started with is an error: the files
// changed since it started, or they are not what it read.
func Thresholds(e Effective) (v1alpha1.KubeletEviction, error) {
	out := v1alpha1.KubeletEviction{Source: e.Source}
	var errs []error
	for _, f := range []struct {
		signal string
		dst    *string
	}{
		{"nodefs.available", &out.NodefsAvailable},
		{"nodefs.inodesFree", &out.NodefsInodesFree},
		{"imagefs.available", &out.ImagefsAvailable},
		{"imagefs.inodesFree", &out.ImagefsInodesFree},
	} {
		v, ok := e.EvictionHard[f.signal]
		if !ok {
			continue
		}
		t, err := evaluation.ParseEvictionThreshold(v)
		if err == nil && v == "" {
			err = errors.New("empty threshold")
		}
		if err == nil && len(t.Text) > maxThreshold {
			err = fmt.Errorf("threshold %q longer than %d characters", t.Text, maxThreshold)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.signal, err))
			continue
		}
		*f.dst = t.Text
	}
	return out, errors.Join(errs...)
}
