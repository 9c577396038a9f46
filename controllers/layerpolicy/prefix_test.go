package layerpolicy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// defaultPrefix is the CRD default of spec.offload.s3.prefix.
const defaultPrefix = "{{.Namespace}}/{{.Owner}}/{{.Pod}}/{{.Container}}"

var sample = PrefixData{Namespace: "shop", Owner: "web", OwnerKind: "Deployment", Pod: "web-7d9f8c-abcde",
	PodUID: "0b9f6c1e-uid", Container: "app", Node: "node-1", Policy: "logs"}

func TestRenderPrefix(t *testing.T) {
	with := func(mutate func(*PrefixData)) PrefixData {
		d := sample
		mutate(&d)
		return d
	}
	cases := map[string]struct {
		tmpl    string
		data    PrefixData
		want    string
		wantErr string // substring; "" for no error
	}{
		"default template": {tmpl: defaultPrefix, data: sample, want: "shop/web/web-7d9f8c-abcde/app"},
		"Namespace":        {tmpl: "{{.Namespace}}", data: sample, want: "shop"},
		"Owner":            {tmpl: "{{.Owner}}", data: sample, want: "web"},
		"OwnerKind":        {tmpl: "{{.OwnerKind}}", data: sample, want: "Deployment"},
		"Pod":              {tmpl: "{{.Pod}}", data: sample, want: "web-7d9f8c-abcde"},
		"PodUID":           {tmpl: "{{.PodUID}}", data: sample, want: "0b9f6c1e-uid"},
		"Container":        {tmpl: "{{.Container}}", data: sample, want: "app"},
		"Node":             {tmpl: "{{.Node}}", data: sample, want: "node-1"},
		"Policy":           {tmpl: "{{.Policy}}", data: sample, want: "logs"},
		"every field": {
			tmpl: "{{.Namespace}}/{{.OwnerKind}}/{{.Owner}}/{{.Pod}}/{{.PodUID}}/{{.Container}}/{{.Node}}/{{.Policy}}",
			data: sample, want: "shop/Deployment/web/web-7d9f8c-abcde/0b9f6c1e-uid/app/node-1/logs"},
		"literal text and fields":       {tmpl: "logs/{{.Namespace}}-{{.Owner}}/x", data: sample, want: "logs/shop-web/x"},
		"literal only":                  {tmpl: "archive", data: sample, want: "archive"},
		"template functions":            {tmpl: `{{printf "%s.%s" .Namespace .Pod}}`, data: sample, want: "shop.web-7d9f8c-abcde"},
		"leading slash trimmed":         {tmpl: "/{{.Namespace}}/{{.Pod}}", data: sample, want: "shop/web-7d9f8c-abcde"},
		"trailing slash trimmed":        {tmpl: "{{.Namespace}}/{{.Pod}}/", data: sample, want: "shop/web-7d9f8c-abcde"},
		"several outer slashes":         {tmpl: "//{{.Namespace}}//", data: sample, want: "shop"},
		"dots inside an element are ok": {tmpl: "{{.Namespace}}/v1.2..3/..a/b..", data: sample, want: "shop/v1.2..3/..a/b.."},
		"empty trailing field trimmed": {tmpl: defaultPrefix, data: with(func(d *PrefixData) { d.Container = "" }),
			want: "shop/web/web-7d9f8c-abcde"},

		"unknown field":            {tmpl: "{{.Namespace}}/{{.Cluster}}", data: sample, wantErr: "Cluster"},
		"unknown field, lowercase": {tmpl: "{{.namespace}}", data: sample, wantErr: "namespace"},
		"unknown function":         {tmpl: "{{lower .Pod}}", data: sample, wantErr: `function "lower" not defined`},
		"unclosed action":          {tmpl: "{{.Namespace", data: sample, wantErr: "spec.offload.s3.prefix"},
		"empty template":           {tmpl: "", data: sample, wantErr: "empty prefix"},
		"only slashes":             {tmpl: "///", data: sample, wantErr: "empty prefix"},
		"a lone empty field": {tmpl: "{{.Node}}", data: with(func(d *PrefixData) { d.Node = "" }),
			wantErr: "empty prefix"},
		"literal ..":          {tmpl: "..", data: sample, wantErr: "'..'"},
		"literal .":           {tmpl: ".", data: sample, wantErr: "'.'"},
		".. in the middle":    {tmpl: "{{.Namespace}}/../{{.Pod}}", data: sample, wantErr: "'..'"},
		".. at the start":     {tmpl: "../{{.Pod}}", data: sample, wantErr: "'..'"},
		".. after a slash":    {tmpl: "/../{{.Pod}}", data: sample, wantErr: "'..'"},
		". in the middle":     {tmpl: "{{.Namespace}}/./{{.Pod}}", data: sample, wantErr: "'.'"},
		"double slash inside": {tmpl: "{{.Namespace}}//{{.Pod}}", data: sample, wantErr: "empty"},
		"empty field in the middle": {tmpl: defaultPrefix, data: with(func(d *PrefixData) { d.Owner = "" }),
			wantErr: "empty"},
		"Container ..": {tmpl: defaultPrefix, data: with(func(d *PrefixData) { d.Container = ".." }),
			wantErr: `"shop/web/web-7d9f8c-abcde/.."`},
		"Container .": {tmpl: defaultPrefix, data: with(func(d *PrefixData) { d.Container = "." }),
			wantErr: "'.'"},
		"Namespace .. leading": {tmpl: defaultPrefix, data: with(func(d *PrefixData) { d.Namespace = ".." }),
			wantErr: "'..'"},
		"field value carrying /..": {tmpl: defaultPrefix, data: with(func(d *PrefixData) { d.Owner = "x/.." }),
			wantErr: "'..'"},
		"field value carrying ../..": {tmpl: "{{.Pod}}", data: with(func(d *PrefixData) { d.Pod = "../../etc" }),
			wantErr: "'..'"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := RenderPrefix(tc.tmpl, tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("RenderPrefix(%q) = %q, %v; want an error containing %q", tc.tmpl, got, err, tc.wantErr)
				}
				if got != "" {
					t.Errorf("RenderPrefix(%q) returned %q with its error, want \"\"", tc.tmpl, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("RenderPrefix(%q): %v", tc.tmpl, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("RenderPrefix(%q) (-want +got):\n%s", tc.tmpl, diff)
			}
		})
	}
}

func TestValidatePrefix(t *testing.T) {
	cases := map[string]struct {
		tmpl    string
		wantErr bool
	}{
		"default template": {tmpl: defaultPrefix},
		"every field": {
			tmpl: "{{.Namespace}}/{{.OwnerKind}}/{{.Owner}}/{{.Pod}}/{{.PodUID}}/{{.Container}}/{{.Node}}/{{.Policy}}"},
		"literal":                     {tmpl: "archive/layerkeeper"},
		"outer slashes":               {tmpl: "/{{.Namespace}}/"},
		"unknown field":               {tmpl: "{{.Cluster}}", wantErr: true},
		"parse error":                 {tmpl: "{{.Namespace", wantErr: true},
		"empty":                       {tmpl: "", wantErr: true},
		"only slashes":                {tmpl: "/", wantErr: true},
		"..":                          {tmpl: "{{.Namespace}}/..", wantErr: true},
		"double slash":                {tmpl: "{{.Namespace}}//{{.Pod}}", wantErr: true},
		"key prefix with a ':' is ok": {tmpl: "{{.Namespace}}:{{.Pod}}"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := ValidatePrefix(tc.tmpl)
			if (err != nil) != tc.wantErr {
				t.Errorf("ValidatePrefix(%q) = %v, want error %t", tc.tmpl, err, tc.wantErr)
			}
		})
	}
}
