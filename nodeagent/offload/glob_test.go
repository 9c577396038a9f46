package offload

import "testing"

func TestMatcher(t *testing.T) {
	cases := []struct {
		name             string
		include, exclude []string
		rel              string
		want             bool
	}{
		{"empty include ships everything", nil, nil, "2026-11-25/1.log", true},
		{"star within one name", []string{"*.log"}, nil, "a.log", true},
		{"star does not cross directories", []string{"*.log"}, nil, "d/a.log", false},
		{"double star crosses directories", []string{"**/*.log"}, nil, "2026/11/25/a.log", true},
		{"double star matches no directory", []string{"**/*.log"}, nil, "a.log", true},
		{"double star in the middle", []string{"scheduler/**/*.log"}, nil, "scheduler/2026-11-25/a.log", true},
		{"double star in the middle, zero dirs", []string{"scheduler/**/*.log"}, nil, "scheduler/a.log", true},
		{"trailing double star matches all below", []string{"old/**"}, nil, "old/x/y", true},
		{"not included", []string{"**/*.log"}, nil, "a.txt", false},
		{"exclude wins", []string{"**/*.log"}, []string{"**/current.log"}, "d/current.log", false},
		{"exclude alone", nil, []string{"*.pid"}, "app.pid", false},
		{"exclude alone lets others pass", nil, []string{"*.pid"}, "app.log", true},
		{"question mark", []string{"?.log"}, nil, "1.log", true},
		{"class", []string{"[0-9]*.log"}, nil, "9-x.log", true},
		{"leading slash in glob is relative", []string{"/*.log"}, nil, "a.log", true},
		{"several includes", []string{"*.txt", "*.log"}, nil, "a.log", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewMatcher(tc.include, tc.exclude)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Match(tc.rel); got != tc.want {
				t.Errorf("Match(%q) with include %q exclude %q = %v, want %v", tc.rel, tc.include, tc.exclude, got, tc.want)
			}
		})
	}
}

func TestMatcherRejectsBadGlobs(t *testing.T) {
	for _, g := range []string{"[", "a//b", "/", "x/[z"} {
		if _, err := NewMatcher([]string{g}, nil); err == nil {
			t.Errorf("NewMatcher(%q) = nil error, want one", g)
		}
	}
}
