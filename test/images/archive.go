package images

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"
)

// ImageFile is one file of an image layer.
type ImageFile struct {
	Mode    int64 // permission bits; 0 means 0644
	Content []byte
}

// Image describes a single-layer image.
type Image struct {
	// RepoTag names the image ("localhost/layerkeeper-workload:test").
	RepoTag string
	// Files are the layer's regular files by absolute path; parent directories are added.
	Files map[string]ImageFile
	// Dirs are extra empty directories.
	Dirs []string
	// Entrypoint and Cmd are the image's defaults.
	Entrypoint, Cmd []string
	// User is the default user ("65532:65532"); empty means root.
	User string
	// Labels are image labels.
	Labels map[string]string
}

// epoch is the fixed time stamped on everything, so the archive is reproducible.
var epoch = time.Unix(1700000000, 0).UTC()

// WriteDockerArchive writes img as a docker-archive ("docker save" format: manifest.json, an
// image config named by its digest and one layer tar), which `docker load` and
// `podman load` read without a registry.
func WriteDockerArchive(w io.Writer, img Image) error {
	layer, err := layerTar(img)
	if err != nil {
		return err
	}
	diffID := sha256.Sum256(layer)
	diffHex := hex.EncodeToString(diffID[:])

	cfg := map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config": map[string]any{
			"Entrypoint": img.Entrypoint,
			"Cmd":        img.Cmd,
			"Env":        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			"Labels":     img.Labels,
			"WorkingDir": "/",
			"User":       img.User,
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + diffHex}},
		"history": []map[string]any{{"created": epoch.Format(time.RFC3339), "created_by": "layerkeeper test/images"}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgDigest := sha256.Sum256(cfgJSON)
	cfgName := hex.EncodeToString(cfgDigest[:]) + ".json"
	layerName := diffHex + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{
		"Config": cfgName, "RepoTags": []string{img.RepoTag}, "Layers": []string{layerName},
	}})
	if err != nil {
		return err
	}
	repo, tag, _ := strings.Cut(img.RepoTag[strings.LastIndex(img.RepoTag, "/")+1:], ":")
	repo = img.RepoTag[:strings.LastIndex(img.RepoTag, "/")+1] + repo
	repositories, err := json.Marshal(map[string]map[string]string{repo: {tag: diffHex}})
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	add := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: diffHex + "/", Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir}); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{
		{layerName, layer},
		{diffHex + "/VERSION", []byte("1.0")},
		{cfgName, cfgJSON},
		{"manifest.json", manifest},
		{"repositories", repositories},
	} {
		if err := add(f.name, f.b); err != nil {
			return err
		}
	}
	return tw.Close()
}

// WriteDockerArchiveFile writes img to the file p.
func WriteDockerArchiveFile(p string, img Image) error {
	var buf bytes.Buffer
	if err := WriteDockerArchive(&buf, img); err != nil {
		return err
	}
	return os.WriteFile(p, buf.Bytes(), 0o644)
}

// layerTar is the layer: every directory (parents first), then the files, sorted.
func layerTar(img Image) ([]byte, error) {
	dirs := map[string]bool{}
	addParents := func(p string) {
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for p := range img.Files {
		addParents(p)
	}
	for _, d := range img.Dirs {
		dirs[path.Clean(d)] = true
		addParents(path.Clean(d))
	}
	var dirList, fileList []string
	for d := range dirs {
		dirList = append(dirList, d)
	}
	for p := range img.Files {
		fileList = append(fileList, p)
	}
	sort.Strings(dirList)
	sort.Strings(fileList)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range dirList {
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir}); err != nil {
			return nil, err
		}
	}
	for _, p := range fileList {
		f := img.Files[p]
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: mode, Size: int64(len(f.Content)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
