package discovery

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Runtime configuration files read for non-default roots. Only the few keys below are read,
// and a missing or unreadable file is no error: the mount table and defaults still apply.
const (
	dockerDaemonJSON    = "/etc/docker/daemon.json"
	containerdConfig    = "/etc/containerd/config.toml"
	storageConf         = "/etc/containers/storage.conf"
	storageConfVendor   = "/usr/share/containers/storage.conf"
	crioConf            = "/etc/crio/crio.conf"
	maxConfigFileLength = 1 << 20
)

// dockerConfigRoots returns daemon.json's "data-root" (or the older "graph").
func (d *discoverer) dockerConfigRoots() []string {
	b, err := d.fs.readFile(dockerDaemonJSON, maxConfigFileLength)
	if err != nil {
		return nil
	}
	var cfg struct {
		DataRoot string `json:"data-root"`
		Graph    string `json:"graph"`
	}
	if json.Unmarshal(b, &cfg) != nil {
		return nil
	}
	return nonEmpty(cfg.DataRoot, cfg.Graph)
}

// containerdConfigStates returns the "state" of containerd's config.toml.
func (d *discoverer) containerdConfigStates() []string {
	return nonEmpty(d.tomlString(containerdConfig, "", "state"))
}

// containerdOverlayfsPlugin is the overlayfs snapshotter's plugin ID: its directory under
// containerd's root and its table in config.toml.
const containerdOverlayfsPlugin = "io.containerd.snapshotter.v1.overlayfs"

// containerdConfigSnapshotRoots returns the overlayfs snapshotter directories containerd's
// config.toml names: <root>/io.containerd.snapshotter.v1.overlayfs and the plugin's
// root_path.
func (d *discoverer) containerdConfigSnapshotRoots() []string {
	var out []string
	for _, root := range nonEmpty(d.tomlString(containerdConfig, "", "root")) {
		out = append(out, root+"/"+containerdOverlayfsPlugin)
	}
	return append(out, nonEmpty(d.tomlString(containerdConfig, `plugins."`+containerdOverlayfsPlugin+`"`, "root_path"))...)
}

// containerdConfigSocket returns the [grpc] address of containerd's config.toml, or "".
func (d *discoverer) containerdConfigSocket() string {
	addr := strings.TrimPrefix(d.tomlString(containerdConfig, "grpc", "address"), "unix://")
	if !strings.HasPrefix(addr, "/") {
		return ""
	}
	return addr
}

// storageConfigRoots returns graphroot/runroot from storage.conf ([storage]) and root/runroot
// from crio.conf ([crio]).
func (d *discoverer) storageConfigRoots() (graph, run []string) {
	for _, f := range []string{storageConf, storageConfVendor} {
		graph = append(graph, nonEmpty(d.tomlString(f, "storage", "graphroot"))...)
		run = append(run, nonEmpty(d.tomlString(f, "storage", "runroot"))...)
	}
	graph = append(graph, nonEmpty(d.tomlString(crioConf, "crio", "root"))...)
	run = append(run, nonEmpty(d.tomlString(crioConf, "crio", "runroot"))...)
	return graph, run
}

// tomlString reads one `key = "string"` in [table] ("" for the top level) of a TOML file. It
// is not a TOML parser: it understands the flat form these files use for these keys.
func (d *discoverer) tomlString(file, table, key string) string {
	b, err := d.fs.readFile(file, maxConfigFileLength)
	if err != nil {
		return ""
	}
	cur := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			cur = strings.Trim(line, "[] \t")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || cur != table || strings.TrimSpace(k) != key {
			continue
		}
		v = strings.TrimSpace(v)
		if s, err := strconv.Unquote(v); err == nil {
			return s
		}
		if len(v) >= 2 && v[0] == '\'' {
			if end := strings.IndexByte(v[1:], '\''); end >= 0 {
				return v[1 : end+1]
			}
		}
		if i := strings.Index(v, "\" #"); i > 0 {
			if s, err := strconv.Unquote(v[:i+1]); err == nil {
				return s
			}
		}
	}
	return ""
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" && strings.HasPrefix(s, "/") {
			out = append(out, s)
		}
	}
	return out
}
