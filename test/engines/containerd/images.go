package containerd

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/layerkeeper/layerkeeper/test/images"
)

// LogWriterImage is the image ImportLogWriter imports: test/images/logwriter as its
// entrypoint, /opt/airflow/logs in its layer.
const LogWriterImage = images.LogWriterImage

// ImportLogWriter builds the log writer image and imports it.
func (c *Containerd) ImportLogWriter(t testing.TB) {
	t.Helper()
	img, err := images.LogWriter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(c.Dir, "logwriter.tar")
	if err := images.WriteDockerArchiveFile(p, img); err != nil {
		t.Fatal(err)
	}
	c.ImportImage(t, p)
}
