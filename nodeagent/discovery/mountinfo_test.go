package discovery

import (
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMountInfo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Mount
		wantErr string
	}{{
		name: "proc(5) example with optional field",
		in:   "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
		want: []Mount{{
			ID: 36, ParentID: 35, Major: 98, Minor: 0, Root: "/mnt1", MountPoint: "/mnt2",
			MountOptions: "rw,noatime", OptionalFields: []string{"master:1"}, FSType: "ext3", Source: "/dev/root",
			SuperOptions: []MountOption{{"rw", ""}, {"errors", "continue"}},
		}},
	}, {
		name: "no optional fields, several optional fields",
		in: "21 26 0:20 / /proc rw,relatime - proc proc rw\n" +
			"40 30 0:37 / /sys/fs/cgroup/unified rw,relatime shared:7 master:3 propagate_from:2 unbindable - cgroup2 cgroup2 rw\n",
		want: []Mount{{
			ID: 21, ParentID: 26, Major: 0, Minor: 20, Root: "/", MountPoint: "/proc", MountOptions: "rw,relatime",
			FSType: "proc", Source: "proc", SuperOptions: []MountOption{{"rw", ""}},
		}, {
			ID: 40, ParentID: 30, Major: 0, Minor: 37, Root: "/", MountPoint: "/sys/fs/cgroup/unified", MountOptions: "rw,relatime",
			OptionalFields: []string{"shared:7", "master:3", "propagate_from:2", "unbindable"},
			FSType:         "cgroup2", Source: "cgroup2", SuperOptions: []MountOption{{"rw", ""}},
		}},
	}, {
		name: "octal escapes in mount point, root, source and super options",
		in:   `50 26 0:50 /a\134b /mnt/with\040space\011tab\012nl rw - fuse.my\040fs my\040src rw,user_id=0,path=/x\054y\040z` + "\n",
		want: []Mount{{
			ID: 50, ParentID: 26, Major: 0, Minor: 50, Root: `/a\b`, MountPoint: "/mnt/with space\ttab\nnl",
			MountOptions: "rw", FSType: "fuse.my fs", Source: "my src",
			SuperOptions: []MountOption{{"rw", ""}, {"user_id", "0"}, {"path", "/x,y z"}},
		}},
	}, {
		name: "backslash not followed by an octal triple is kept",
		in:   `1 0 1:2 / /a\9b\0 rw - ext4 /dev/x rw` + "\n",
		want: []Mount{{
			ID: 1, ParentID: 0, Major: 1, Minor: 2, Root: "/", MountPoint: `/a\9b\0`, MountOptions: "rw",
			FSType: "ext4", Source: "/dev/x", SuperOptions: []MountOption{{"rw", ""}},
		}},
	}, {
		name: "missing super options field, empty source",
		in:   "7 1 0:9 / /x rw - tmpfs \n8 1 0:10 / /y rw - tmpfs none\n",
		want: []Mount{{
			ID: 7, ParentID: 1, Major: 0, Minor: 9, Root: "/", MountPoint: "/x", MountOptions: "rw",
			FSType: "tmpfs", Source: "",
		}, {
			ID: 8, ParentID: 1, Major: 0, Minor: 10, Root: "/", MountPoint: "/y", MountOptions: "rw",
			FSType: "tmpfs", Source: "none",
		}},
	}, {
		name: "malformed lines are skipped and reported, good ones kept",
		in: "garbage\n" +
			"1 2 3:4 / /ok rw - ext4 /dev/a rw\n" +
			"x 2 3:4 / /bad rw - ext4 /dev/a rw\n" +
			"1 2 34 / /bad rw - ext4 /dev/a rw\n" +
			"1 2 3:4 / /bad rw ext4 /dev/a rw\n" +
			"1 2 3:4 / /bad rw - ext4 /dev/a rw extra\n",
		want: []Mount{{
			ID: 1, ParentID: 2, Major: 3, Minor: 4, Root: "/", MountPoint: "/ok", MountOptions: "rw",
			FSType: "ext4", Source: "/dev/a", SuperOptions: []MountOption{{"rw", ""}},
		}},
		wantErr: "mountinfo line 1",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMountInfo(strings.NewReader(tt.in))
			if tt.wantErr == "" && err != nil {
				t.Fatalf("ParseMountInfo: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("ParseMountInfo error = %v, want one containing %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseMountInfo (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOverlayDirs(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    OverlayDirs
		rel     bool
		base    string
		resolve OverlayDirs
	}{{
		name: "containerd, uuid=on after workdir, options in any order",
		line: "45 41 0:38 / /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs rw,relatime - overlay overlay " +
			"rw,workdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/work,uuid=on," +
			"lowerdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/3/fs:/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/2/fs," +
			"upperdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/fs",
		want: OverlayDirs{
			LowerDirs: []string{"/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/3/fs", "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/2/fs"},
			UpperDir:  "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/fs",
			WorkDir:   "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/work",
		},
	}, {
		name: "containerd long options: relative lowerdir against the snapshots directory",
		line: "45 41 0:38 / /r rw - overlay overlay rw,lowerdir=3/fs:2/fs,upperdir=/s/snapshots/12/fs,workdir=/s/snapshots/12/work",
		want: OverlayDirs{LowerDirs: []string{"3/fs", "2/fs"}, UpperDir: "/s/snapshots/12/fs", WorkDir: "/s/snapshots/12/work"},
		rel:  true, base: "/s/snapshots",
		resolve: OverlayDirs{LowerDirs: []string{"/s/snapshots/3/fs", "/s/snapshots/2/fs"}, UpperDir: "/s/snapshots/12/fs", WorkDir: "/s/snapshots/12/work"},
	}, {
		name: "docker long options: relative upperdir against the driver home",
		line: "45 41 0:38 / /var/lib/docker/overlay2/m1/merged rw - overlay overlay rw,lowerdir=l/AAA:l/BBB,upperdir=m1/diff,workdir=m1/work",
		want: OverlayDirs{LowerDirs: []string{"l/AAA", "l/BBB"}, UpperDir: "m1/diff", WorkDir: "m1/work"},
		rel:  true, base: "/var/lib/docker/overlay2",
		resolve: OverlayDirs{
			LowerDirs: []string{"/var/lib/docker/overlay2/l/AAA", "/var/lib/docker/overlay2/l/BBB"},
			UpperDir:  "/var/lib/docker/overlay2/m1/diff", WorkDir: "/var/lib/docker/overlay2/m1/work",
		},
	}, {
		name: "escaped colon and comma in layer paths, data-only layers",
		line: `1 1 0:1 / /m rw - overlay overlay rw,lowerdir=/a\134:b:/c\054d::/data1,upperdir=/u\040p,workdir=/w`,
		want: OverlayDirs{LowerDirs: []string{"/a:b", "/c,d"}, DataDirs: []string{"/data1"}, UpperDir: "/u p", WorkDir: "/w"},
	}, {
		name: "lowerdir+ and datadir+ (new mount API)",
		line: "1 1 0:1 / /m rw - overlay overlay rw,lowerdir+=/l1,lowerdir+=/l2,datadir+=/d1,upperdir=/u,workdir=/w",
		want: OverlayDirs{LowerDirs: []string{"/l1", "/l2"}, DataDirs: []string{"/d1"}, UpperDir: "/u", WorkDir: "/w"},
	}, {
		name: "read-only overlay",
		line: "1 1 0:1 / /m ro - overlay overlay ro,lowerdir=/l1:/l2",
		want: OverlayDirs{LowerDirs: []string{"/l1", "/l2"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := ParseMountInfo(strings.NewReader(tt.line))
			if err != nil || len(ms) != 1 {
				t.Fatalf("ParseMountInfo = %v, %v", ms, err)
			}
			got, ok := ms[0].Overlay()
			if !ok {
				t.Fatal("Overlay() not ok")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Overlay (-want +got):\n%s", diff)
			}
			if got.Relative() != tt.rel {
				t.Errorf("Relative() = %v, want %v", got.Relative(), tt.rel)
			}
			if tt.rel {
				if diff := cmp.Diff(tt.resolve, got.Resolve(tt.base)); diff != "" {
					t.Errorf("Resolve (-want +got):\n%s", diff)
				}
			}
		})
	}
	ext4 := Mount{FSType: "ext4"}
	if _, ok := ext4.Overlay(); ok {
		t.Error("Overlay() ok for ext4")
	}
}

func TestMountOptionLookupIsOrderIndependent(t *testing.T) {
	a, _ := ParseMountInfo(strings.NewReader("1 1 0:1 / /m rw - overlay overlay rw,upperdir=/u,workdir=/w,uuid=on\n"))
	b, _ := ParseMountInfo(strings.NewReader("1 1 0:1 / /m rw - overlay overlay uuid=on,workdir=/w,rw,upperdir=/u\n"))
	for _, k := range []string{"upperdir", "workdir", "uuid", "rw"} {
		va, oka := a[0].Option(k)
		vb, okb := b[0].Option(k)
		if va != vb || !oka || !okb {
			t.Errorf("Option(%q) = %q,%v and %q,%v", k, va, oka, vb, okb)
		}
	}
	if _, ok := a[0].Option("lowerdir"); ok {
		t.Error("Option(lowerdir) found in a mount without it")
	}
}

// FuzzParseMountInfo checks that the parser never panics and that every mount it returns
// survives a round trip through the kernel's escaping (String) unchanged.
func FuzzParseMountInfo(f *testing.F) {
	for _, s := range []string{
		"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
		`50 26 0:50 /a\134b /mnt/with\040space rw - fuse.x my\040src rw,path=/x\054y` + "\n",
		"45 41 0:38 / /var/lib/docker/overlay2/m1/merged rw - overlay overlay rw,lowerdir=l/A:l/B,upperdir=m1/diff,workdir=m1/work\n",
		"45 41 0:38 / /r rw - overlay overlay rw,lowerdir=/a\\134:b::/d,upperdir=/u,workdir=/w,uuid=on\n",
		"1 1 0:1 / /m rw - overlay overlay rw,lowerdir+=/l1,datadir+=/d1\n",
		"7 1 0:9 / /x rw - tmpfs \n",
		"1 2 3:4 / /bad rw - ext4 /dev/a rw extra\n",
		"",
		"\n\n- - - -\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ms, _ := ParseMountInfo(strings.NewReader(in))
		for _, m := range ms {
			m.Overlay()
			line := m.String()
			if strings.ContainsAny(line, "\n") {
				t.Fatalf("String() of %#v contains a newline: %q", m, line)
			}
			again, err := ParseMountInfo(strings.NewReader(line + "\n"))
			if err != nil || len(again) != 1 {
				t.Fatalf("re-parsing %q: %v, %d mounts", line, err, len(again))
			}
			if !reflect.DeepEqual(m, again[0]) {
				t.Fatalf("round trip changed the mount:\n in: %#v\nout: %#v\nline: %q", m, again[0], line)
			}
		}
	})
}
