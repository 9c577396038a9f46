package kubelet

import (
	"fmt"
	"strings"
)

// DefaultRootDir is the kubelet's --root-dir default: the directory whose filesystem it calls
// nodefs.
const DefaultRootDir = "/var/lib/kubelet"

// Flags are the kubelet command-line flags that decide its hard eviction thresholds.
type Flags struct {
	// Config is --config, the KubeletConfiguration file ("" when not given).
	Config string
	// ConfigDir is --config-dir, the directory of drop-in files ("" when not given).
	ConfigDir string
	// RootDir is --root-dir (DefaultRootDir when not given).
	RootDir string
	// EvictionHard is --eviction-hard, its occurrences merged; nil when the flag is absent,
	// empty (not nil) for --eviction-hard="".
	EvictionHard map[string]string
	// HostnameOverride is --hostname-override.
	HostnameOverride string
}

// valueFlags are the kubelet flags read here; each takes a value.
var valueFlags = map[string]bool{"config": true, "config-dir": true, "root-dir": true, "eviction-hard": true, "hostname-override": true}

// ParseFlags reads the kubelet's arguments (its command line without argv[0]) the way its
// flag set (spf13/pflag, with "_" normalized to "-") does: "--name=value" or "--name value",
// the last occurrence of a flag winning, except --eviction-hard whose "signal<value" pairs
// accumulate over occurrences; "--" ends the flags. Other flags are skipped: one without "="
// is taken to consume the next argument unless it starts with "-" (a running kubelet has no
// positional argument, so such an argument can only be a flag's value).
func ParseFlags(args []string) (Flags, error) {
	f := Flags{RootDir: DefaultRootDir}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if len(a) < 2 || a[0] != '-' {
			continue // a value of a flag skipped below; never a kubelet positional argument
		}
		name := strings.TrimLeft(a, "-")
		value, hasValue := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, value, hasValue = k, v, true
		}
		name = strings.ReplaceAll(name, "_", "-")
		if !strings.HasPrefix(a, "--") || !valueFlags[name] {
			// A shorthand (-v 2) or another flag: step over a separate value.
			if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
			}
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return Flags{}, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			value = args[i]
		}
		switch name {
		case "config":
			f.Config = value
		case "config-dir":
			f.ConfigDir = value
		case "root-dir":
			f.RootDir = value
		case "hostname-override":
			f.HostnameOverride = value
		case "eviction-hard":
			if f.EvictionHard == nil {
				f.EvictionHard = map[string]string{}
			}
			for _, pair := range strings.Split(value, ",") {
				if pair == "" {
					continue
				}
				k, v, ok := strings.Cut(pair, "<")
				if !ok {
					return Flags{}, fmt.Errorf("--eviction-hard: malformed pair %q, want signal<value", pair)
				}
				f.EvictionHard[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return f, nil
}
