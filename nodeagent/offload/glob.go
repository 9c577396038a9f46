package offload

import (
	"fmt"
	"path"
	"strings"
)

// Matcher selects files under a hot path by their path relative to it ("a/b/c.log"), with
// the hot path's include and exclude globs.
type Matcher struct {
	include, exclude [][]string
}

// NewMatcher compiles include and exclude globs. "**" matches any number of directories
// (also none), "*", "?" and "[...]" match within one name as in path.Match. An empty include
// matches every file.
func NewMatcher(include, exclude []string) (*Matcher, error) {
	m := &Matcher{}
	for _, list := range []struct {
		globs []string
		into  *[][]string
	}{{include, &m.include}, {exclude, &m.exclude}} {
		for _, g := range list.globs {
			segs, err := compileGlob(g)
			if err != nil {
				return nil, err
			}
			*list.into = append(*list.into, segs)
		}
	}
	return m, nil
}

func compileGlob(g string) ([]string, error) {
	g = strings.TrimPrefix(g, "/")
	if g == "" {
		return nil, fmt.Errorf("empty glob")
	}
	segs := strings.Split(g, "/")
	for _, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("glob %q has an empty element", g)
		}
		if s == "**" {
			continue
		}
		if _, err := path.Match(s, ""); err != nil {
			return nil, fmt.Errorf("glob %q: %w", g, err)
		}
	}
	return segs, nil
}

// Match reports whether rel (slash-separated, relative to the hot path) is shipped.
func (m *Matcher) Match(rel string) bool {
	names := strings.Split(rel, "/")
	for _, ex := range m.exclude {
		if matchSegments(ex, names) {
			return false
		}
	}
	if len(m.include) == 0 {
		return true
	}
	for _, in := range m.include {
		if matchSegments(in, names) {
			return true
		}
	}
	return false
}

// matchSegments matches glob segments against path names; "**" takes zero or more names.
func matchSegments(glob, names []string) bool {
	for len(glob) > 0 {
		if glob[0] == "**" {
			rest := glob[1:]
			for i := 0; i <= len(names); i++ {
				if matchSegments(rest, names[i:]) {
					return true
				}
			}
			return false
		}
		if len(names) == 0 {
			return false
		}
		if ok, _ := path.Match(glob[0], names[0]); !ok {
			return false
		}
		glob, names = glob[1:], names[1:]
	}
	return len(names) == 0
}
