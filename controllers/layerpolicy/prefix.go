package layerpolicy

import (
	"bytes"
	"fmt"
	"path"
	"strings"
	"text/template"
)

// PrefixData are the fields of spec.offload.s3.prefix.
type PrefixData struct {
	Namespace, Owner, OwnerKind, Pod, PodUID, Container, Node, Policy string
}

// RenderPrefix renders a key prefix template. Slashes at either end of the result are trimmed;
// unknown fields, an empty result and a result with an empty, "." or ".." element are errors.
func RenderPrefix(tmpl string, data PrefixData) (string, error) {
	t, err := template.New("prefix").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("spec.offload.s3.prefix: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("spec.offload.s3.prefix: %w", err)
	}
	out := strings.Trim(b.String(), "/")
	if out == "" {
		return "", fmt.Errorf("spec.offload.s3.prefix %q renders to an empty prefix", tmpl)
	}
	for _, el := range strings.Split(out, "/") {
		if el == "" || el == "." || el == ".." {
			return "", fmt.Errorf("spec.offload.s3.prefix %q renders to %q, which has an empty, '.' or '..' element", tmpl, out)
		}
	}
	return path.Clean(out), nil
}

// ValidatePrefix checks a template against sample values of every field.
func ValidatePrefix(tmpl string) error {
	_, err := RenderPrefix(tmpl, PrefixData{Namespace: "ns", Owner: "owner", OwnerKind: "Deployment", Pod: "pod",
		PodUID: "uid", Container: "container", Node: "node", Policy: "policy"})
	return err
}
