package images

import (
	"context"
	"fmt"
)

// The images this package builds. Pods use them with imagePullPolicy: Never.
const (
	// PauseImage is the pod sandbox image: a static binary that waits for SIGTERM.
	PauseImage = "localhost/layerkeeper-pause:dev"
	// LogWriterImage runs logwriter (see logwriter/main.go) as its entrypoint.
	LogWriterImage = "localhost/layerkeeper-logwriter:dev"
	// QuietImage runs quiet, which writes nothing (see quiet/main.go).
	QuietImage = "localhost/layerkeeper-quiet:dev"
	// LayerkeeperImage is the repository's layerkeeper binary, laid out as the Dockerfile
	// lays it out (/layerkeeper, user 65532).
	LayerkeeperImage = "layerkeeper:dev"
)

// LayerkeeperVersion is the version stamped into the layerkeeper binary of LayerkeeperImage.
const LayerkeeperVersion = "dev"

// mountPoints are the directories CRI mounts over or creates files in (/dev, /proc, /sys,
// /etc/hosts...), present in every workload image so that only what the workload writes,
// and the 0-byte files CRI bind-mounts onto, lands in its writable layer.
var mountPoints = []string{"/dev", "/proc", "/sys", "/etc", "/tmp"}

// Pause returns the sandbox image.
func Pause(ctx context.Context) (Image, error) {
	return program(ctx, "pause", PauseImage, nil)
}

// LogWriter returns the Airflow-like log writer image; /opt/airflow/logs is in its layer.
func LogWriter(ctx context.Context) (Image, error) {
	return program(ctx, "logwriter", LogWriterImage, []string{"/opt/airflow/logs"})
}

// Quiet returns the image of a workload that writes nothing.
func Quiet(ctx context.Context) (Image, error) {
	return program(ctx, "quiet", QuietImage, nil)
}

// Layerkeeper returns the image of the repository's layerkeeper binary (`go build .` at the
// module root), as the Dockerfile builds it.
func Layerkeeper(ctx context.Context) (Image, error) {
	bin, err := BuildProgram(ctx, ".", "-X main.version="+LayerkeeperVersion)
	if err != nil {
		return Image{}, err
	}
	return Image{
		RepoTag:    LayerkeeperImage,
		Files:      map[string]ImageFile{"/layerkeeper": {Mode: 0o755, Content: bin}},
		Dirs:       mountPoints,
		Entrypoint: []string{"/layerkeeper"},
		User:       "65532:65532",
	}, nil
}

// All returns every image of this package: pause, logwriter, quiet and layerkeeper.
func All(ctx context.Context) ([]Image, error) {
	var out []Image
	for _, f := range []func(context.Context) (Image, error){Pause, LogWriter, Quiet, Layerkeeper} {
		img, err := f(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// program is the image of the program test/images/<name>: /<name> as its entrypoint.
func program(ctx context.Context, name, ref string, dirs []string) (Image, error) {
	bin, err := BuildProgram(ctx, "test/images/"+name)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	return Image{
		RepoTag:    ref,
		Files:      map[string]ImageFile{"/" + name: {Mode: 0o755, Content: bin}},
		Dirs:       append(append([]string{}, mountPoints...), dirs...),
		Entrypoint: []string{"/" + name},
	}, nil
}
