// Command chartdoc renders a Helm chart's README from the comments in its values.yaml: every key
// must carry a comment directly above it, and a key without one is an error, so the README can
// never leave a value undocumented.
//
// Usage: go run ./hack/chartdoc charts/layerkeeper
//
// It reads <chart>/values.yaml and <chart>/README.md.gotmpl and writes <chart>/README.md; the
// template gets the table of values as {{ .Values }}.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// Value is one documented key of values.yaml.
type Value struct {
	Key         string // dotted path, e.g. agent.serviceAccount.annotations
	Default     string // JSON, empty for a map that has keys of its own
	Description string
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: chartdoc CHART_DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "chartdoc:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return err
	}
	values, err := Parse(raw)
	if err != nil {
		return err
	}
	tmpl, err := template.ParseFiles(filepath.Join(dir, "README.md.gotmpl"))
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, map[string]string{"Values": Table(values)}); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "README.md"), out.Bytes(), 0o644)
}

// Parse returns every key of a values.yaml document in order, with its comment and default.
// It fails naming every key that has no comment.
func Parse(raw []byte) ([]Value, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("values.yaml is not a mapping")
	}
	var values []Value
	var undocumented []string
	var walk func(prefix string, m *yaml.Node) error
	walk = func(prefix string, m *yaml.Node) error {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			desc := comment(k.HeadComment)
			if desc == "" {
				undocumented = append(undocumented, key)
			}
			val := Value{Key: key, Description: desc}
			if v.Kind == yaml.MappingNode && len(v.Content) > 0 {
				values = append(values, val)
				if err := walk(key+".", v); err != nil {
					return err
				}
				continue
			}
			var x any
			if err := v.Decode(&x); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			if x == nil && v.Kind == yaml.MappingNode {
				x = map[string]any{}
			}
			b, err := json.Marshal(x)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			val.Default = string(b)
			values = append(values, val)
		}
		return nil
	}
	if err := walk("", doc.Content[0]); err != nil {
		return nil, err
	}
	if len(undocumented) > 0 {
		return nil, fmt.Errorf("values without a comment directly above them: %s", strings.Join(undocumented, ", "))
	}
	return values, nil
}

// comment joins the lines of a head comment into one paragraph. Lines before the last blank line
// belong to something else (a file header).
func comment(c string) string {
	lines := strings.Split(c, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) == "" {
			lines = lines[i+1:]
			break
		}
	}
	var words []string
	for _, l := range lines {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
		if l != "" {
			words = append(words, l)
		}
	}
	return strings.Join(words, " ")
}

// Table renders the values as a Markdown table.
func Table(values []Value) string {
	var b strings.Builder
	b.WriteString("| Key | Default | Description |\n| --- | --- | --- |\n")
	for _, v := range values {
		def := ""
		if v.Default != "" {
			def = "`" + cell(v.Default) + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.Key, def, prose(v.Description))
	}
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// prose escapes a description for a table cell: pipes everywhere, angle brackets outside code
// spans (so that "<fullname>" is shown, not taken for HTML).
func prose(s string) string {
	parts := strings.Split(s, "`")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(parts[i])
	}
	return cell(strings.Join(parts, "`"))
}
