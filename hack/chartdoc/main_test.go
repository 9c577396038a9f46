package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	raw := []byte(`# File header.

# The image.
image:
  # Repository.
  repository: example/layerkeeper
  # Extra flags,
  # over two lines.
  extraArgs: []
# Labels.
labels: {}
`)
	got, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []Value{
		{Key: "image", Description: "The image."},
		{Key: "image.repository", Default: `"example/layerkeeper"`, Description: "Repository."},
		{Key: "image.extraArgs", Default: "[]", Description: "Extra flags, over two lines."},
		{Key: "labels", Default: "{}", Description: "Labels."},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestParseRefusesUndocumentedValues(t *testing.T) {
	_, err := Parse([]byte("# Documented.\na: 1\nb:\n  c: 2\n"))
	if err == nil || !strings.Contains(err.Error(), "b, b.c") {
		t.Fatalf("Parse = %v, want an error naming b and b.c", err)
	}
}

func TestProse(t *testing.T) {
	got := prose("default <fullname>-agent, see `a|<b>`")
	want := "default &lt;fullname&gt;-agent, see `a\\|<b>`"
	if got != want {
		t.Errorf("prose = %q, want %q", got, want)
	}
}
