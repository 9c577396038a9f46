package offload

import (
	"strings"
	"testing"
)

func TestObjectKey(t *testing.T) {
	cases := []struct {
		prefix, path, want string
		wantErr            bool
	}{
		{"ns/web/web-1/app", "/opt/airflow/logs/a.log", "ns/web/web-1/app/opt/airflow/logs/a.log", false},
		{"ns/web/", "/a", "ns/web/a", false},
		{"", "/a/b", "a/b", false},
		{"p", "/d/ünïcode.log", "p/d/ünïcode.log", false},
		{"p", "/bad\xffname", "", true},
		{"p", "/new\nline", "", true},
		{"p", "/" + strings.Repeat("x", 1100), "", true},
		{"p", "/", "", true},
	}
	for _, tc := range cases {
		got, err := ObjectKey(tc.prefix, tc.path)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ObjectKey(%q, %q) = %q, %v; want %q, error %v", tc.prefix, tc.path, got, err, tc.want, tc.wantErr)
		}
	}
}
