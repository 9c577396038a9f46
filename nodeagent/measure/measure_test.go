package measure

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery"
)

// layer makes a directory with a few files to stand for an upperdir and returns the
// container discovery would have found for it.
func layer(t *testing.T, id string) discovery.Container {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id, "fs")
	if err := os.MkdirAll(filepath.Join(dir, "var", "log"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.log", "b.log"} {
		if err := os.WriteFile(filepath.Join(dir, "var", "log", name), make([]byte, 10000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return discovery.Container{Runtime: v1alpha1.RuntimeContainerd, ID: id, Running: true, Name: id, UpperDir: dir, HostRoot: "/"}
}

// TestContainerRemovedDuringThePass: a container whose upperdir disappears after discovery
// and before its scan (a pod deleted while the pass runs, as on any busy node) is left out of
// the result, with no error to report, once a second discovery no longer finds it. A layer
// that is missing while discovery still finds the container stays an error: that is not a
// removal but a layer out of reach, which must not pass silently.
func TestContainerRemovedDuringThePass(t *testing.T) {
	for _, tc := range []struct {
		name           string
		stillSeen      bool
		discoveryFails bool
		wantErr        bool
	}{
		{name: "gone from the runtime too: left out", stillSeen: false},
		{name: "still listed by the runtime: an error", stillSeen: true, wantErr: true},
		{name: "the second discovery fails: an error", discoveryFails: true, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := layer(t, "aaaa"), layer(t, "bbbb")
			calls, removed := 0, false
			m := New(Options{Workers: 1})
			m.discover = func(context.Context) ([]discovery.Container, []error) {
				calls++
				if removed && tc.discoveryFails {
					return nil, []error{errors.New("reading the mount table: permission denied")}
				}
				if removed && !tc.stillSeen {
					return []discovery.Container{a}, nil
				}
				return []discovery.Container{a, b}, nil
			}
			// One worker measures a, then b: b's layer goes between the two.
			progress := func(done, _ int) {
				if done == 1 {
					if err := os.RemoveAll(filepath.Dir(b.UpperDir)); err != nil {
						t.Error(err)
					}
					removed = true
				}
			}
			res, err := m.Measure(context.Background(), progress)
			if err != nil {
				t.Fatal(err)
			}
			byID := map[string]Container{}
			for _, c := range res.Containers {
				byID[c.ID] = c
			}
			if c, ok := byID["aaaa"]; !ok || c.Err != nil || c.Usage.Files != 2 {
				t.Errorf("a = %+v, want measured with its 2 files", c)
			}
			got, ok := byID["bbbb"]
			switch {
			case tc.wantErr && (!ok || got.Err == nil || !strings.Contains(got.Err.Error(), "no such file")):
				t.Errorf("b = %+v (listed %v), want it listed with its scan error", got, ok)
			case !tc.wantErr && ok:
				t.Errorf("b = %+v, want it left out", got)
			}
			if len(res.Errors) != 0 {
				t.Errorf("pass errors = %v, want none", res.Errors)
			}
			if tc.discoveryFails {
				return
			}
			if len(res.Filesystems) != 1 {
				t.Errorf("filesystems = %+v, want a's", res.Filesystems)
			}
			if _, kept := m.layers[layerKey{b.Runtime, b.ID, b.UpperDir}]; kept && !tc.stillSeen {
				t.Errorf("the removed container's scanner is kept")
			}
			if calls != 2 {
				t.Errorf("%d discoveries, want a second one to confirm the removal", calls)
			}

			// The next pass: a is still measured and nothing is rediscovered for it.
			calls = 0
			res, err = m.Measure(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.stillSeen && (calls != 1 || len(res.Containers) != 1 || res.Containers[0].ID != "aaaa") {
				t.Errorf("next pass: %d discoveries, containers %+v; want one discovery and a alone", calls, res.Containers)
			}
		})
	}
}
