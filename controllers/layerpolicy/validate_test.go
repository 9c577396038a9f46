package layerpolicy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/evaluation"
	"github.com/layerkeeper/layerkeeper/test/builders"
)

func TestValidate(t *testing.T) {
	base := func() *builders.LayerPolicyWrapper {
		return builders.MakeLayerPolicy("logs", "shop").MatchLabels("app", "web").Thresholds("2Gi", "4Gi", "6Gi")
	}
	// withS3 is a policy offloading to S3 with prefix, optionally through a credentials Secret.
	withS3 := func(prefix, secretName string) *v1alpha1.LayerPolicy {
		w := base().HotPath("/var/log/app").S3("logs-bucket", "")
		if secretName != "" {
			w.CredentialsSecret(secretName)
		}
		p := w.Obj()
		p.Spec.Offload.S3.Prefix = prefix
		return p
	}
	secret := func(data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3-creds", Namespace: "shop"}, Data: map[string][]byte{}}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	bothKeys := map[string]string{v1alpha1.CredentialsKeyAccessKeyID: "AKIA", v1alpha1.CredentialsKeySecretAccessKey: "shh"}
	selector := func(reqs ...metav1.LabelSelectorRequirement) *v1alpha1.LayerPolicy {
		p := base().Obj()
		p.Spec.Selector = metav1.LabelSelector{MatchExpressions: reqs}
		return p
	}
	inodes := func(avail, inodesFree int32) *v1alpha1.LayerPolicy {
		p := base().NodePressure(avail).Obj()
		p.Spec.NodePressure.MinInodesFreePercent = ptr.To(inodesFree)
		return p
	}

	kubelet := func(available, inodesFree string) *v1alpha1.KubeletEviction {
		return &v1alpha1.KubeletEviction{Source: v1alpha1.KubeletEvictionConfigFile, NodefsAvailable: available, NodefsInodesFree: inodesFree}
	}
	// nodes are reports of nodes node-0, node-1, ... with a 100Gi filesystem of 1,000,000 inodes.
	nodes := func(ks ...*v1alpha1.KubeletEviction) []evaluation.NodeKubelet {
		var out []evaluation.NodeKubelet
		for i, k := range ks {
			r := builders.MakeReport(fmt.Sprintf("node-%d", i), time.Time{}, 100<<30, 50<<30).Obj()
			r.Status.KubeletEviction = k
			r.Status.Filesystems[0].Inodes, r.Status.Filesystems[0].InodesFree = 1_000_000, 500_000
			out = append(out, evaluation.NodeKubeletOf(r))
		}
		return out
	}
	cases := map[string]struct {
		policy *v1alpha1.LayerPolicy
		secret *corev1.Secret
		nodes  []evaluation.NodeKubelet
		// wantReason is "" for a valid policy; wantMessage a substring of the message.
		wantReason, wantMessage string
	}{
		"minimal policy":                           {policy: base().Obj()},
		"empty selector selects every pod":         {policy: builders.MakeLayerPolicy("all", "shop").Obj()},
		"valid selector expressions":               {policy: selector(metav1.LabelSelectorRequirement{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}}, metav1.LabelSelectorRequirement{Key: "canary", Operator: metav1.LabelSelectorOpDoesNotExist})},
		"S3 with default prefix, no secret":        {policy: withS3(defaultPrefix, "")},
		"S3 with secret holding both keys":         {policy: withS3(defaultPrefix, "s3-creds"), secret: secret(bothKeys)},
		"session token is optional but fine":       {policy: withS3(defaultPrefix, "s3-creds"), secret: secret(map[string]string{v1alpha1.CredentialsKeyAccessKeyID: "AKIA", v1alpha1.CredentialsKeySecretAccessKey: "shh", v1alpha1.CredentialsKeySessionToken: "tok"})},
		"secret given but not referenced: ignored": {policy: withS3(defaultPrefix, ""), secret: secret(nil)},
		"offload without S3: prefix and secret not checked": {policy: func() *v1alpha1.LayerPolicy {
			p := base().Obj()
			p.Spec.Offload = &v1alpha1.Offload{}
			return p
		}()},
		"node pressure above the kubelet default": {policy: base().NodePressure(11).Obj()},
		"node pressure and inodes above defaults": {policy: inodes(15, 6)},
		"node pressure above a node's own kubelet threshold": {policy: base().NodePressure(16).Obj(),
			nodes: nodes(kubelet("15%", "5%"))},
		"node pressure above every node's threshold": {policy: base().NodePressure(8).Obj(),
			nodes: nodes(kubelet("5%", "5%"), kubelet("7.5%", "5%"))},
		"everything set and valid": {policy: func() *v1alpha1.LayerPolicy {
			p := withS3("{{.Namespace}}/{{.OwnerKind}}/{{.Owner}}/{{.Pod}}/{{.PodUID}}/{{.Container}}/{{.Node}}/{{.Policy}}", "s3-creds")
			p.Spec.NodePressure = &v1alpha1.NodePressure{MinAvailablePercent: 20, MinInodesFreePercent: ptr.To[int32](10)}
			return p
		}(), secret: secret(bothKeys)},

		"invalid selector operator": {policy: selector(metav1.LabelSelectorRequirement{Key: "tier", Operator: "Contains", Values: []string{"web"}}),
			wantReason: v1alpha1.ReasonInvalidSelector, wantMessage: "spec.selector: "},
		"In without values": {policy: selector(metav1.LabelSelectorRequirement{Key: "tier", Operator: metav1.LabelSelectorOpIn}),
			wantReason: v1alpha1.ReasonInvalidSelector, wantMessage: "spec.selector: "},
		"Exists with values": {policy: selector(metav1.LabelSelectorRequirement{Key: "tier", Operator: metav1.LabelSelectorOpExists, Values: []string{"x"}}),
			wantReason: v1alpha1.ReasonInvalidSelector, wantMessage: "spec.selector: "},
		"invalid label key": {policy: selector(metav1.LabelSelectorRequirement{Key: "not a key!", Operator: metav1.LabelSelectorOpExists}),
			wantReason: v1alpha1.ReasonInvalidSelector, wantMessage: "spec.selector: "},
		"selector checked before the prefix": {policy: func() *v1alpha1.LayerPolicy {
			p := withS3("{{.Bogus}}", "")
			p.Spec.Selector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Contains"}}}
			return p
		}(), wantReason: v1alpha1.ReasonInvalidSelector, wantMessage: "spec.selector: "},

		"unknown prefix field": {policy: withS3("{{.Namespace}}/{{.Cluster}}", ""),
			wantReason: v1alpha1.ReasonInvalidPrefixTemplate, wantMessage: "spec.offload.s3.prefix"},
		"prefix parse error": {policy: withS3("{{.Namespace", ""),
			wantReason: v1alpha1.ReasonInvalidPrefixTemplate, wantMessage: "spec.offload.s3.prefix"},
		"prefix with ..": {policy: withS3("{{.Namespace}}/../x", ""),
			wantReason: v1alpha1.ReasonInvalidPrefixTemplate, wantMessage: "'..'"},
		"explicitly empty prefix": {policy: withS3("", ""),
			wantReason: v1alpha1.ReasonInvalidPrefixTemplate, wantMessage: "empty prefix"},
		"prefix checked before the secret": {policy: withS3("{{.Bogus}}", "s3-creds"),
			wantReason: v1alpha1.ReasonInvalidPrefixTemplate, wantMessage: "Bogus"},

		"secret referenced but not found": {policy: withS3(defaultPrefix, "s3-creds"),
			wantReason:  v1alpha1.ReasonCredentialsSecretNotFound,
			wantMessage: "spec.offload.s3.credentialsSecretRef: Secret shop/s3-creds not found"},
		"secret without access key id": {policy: withS3(defaultPrefix, "s3-creds"),
			secret:      secret(map[string]string{v1alpha1.CredentialsKeySecretAccessKey: "shh"}),
			wantReason:  v1alpha1.ReasonCredentialsSecretNotFound,
			wantMessage: "spec.offload.s3.credentialsSecretRef: Secret shop/s3-creds has no key AWS_ACCESS_KEY_ID"},
		"secret without secret access key": {policy: withS3(defaultPrefix, "s3-creds"),
			secret:      secret(map[string]string{v1alpha1.CredentialsKeyAccessKeyID: "AKIA"}),
			wantReason:  v1alpha1.ReasonCredentialsSecretNotFound,
			wantMessage: "spec.offload.s3.credentialsSecretRef: Secret shop/s3-creds has no key AWS_SECRET_ACCESS_KEY"},
		"secret with an empty access key id": {policy: withS3(defaultPrefix, "s3-creds"),
			secret:      secret(map[string]string{v1alpha1.CredentialsKeyAccessKeyID: "", v1alpha1.CredentialsKeySecretAccessKey: "shh"}),
			wantReason:  v1alpha1.ReasonCredentialsSecretNotFound,
			wantMessage: "has no key AWS_ACCESS_KEY_ID"},
		"empty secret": {policy: withS3(defaultPrefix, "s3-creds"), secret: secret(nil),
			wantReason: v1alpha1.ReasonCredentialsSecretNotFound, wantMessage: "has no key AWS_ACCESS_KEY_ID"},
		"secret checked before node pressure": {policy: func() *v1alpha1.LayerPolicy {
			p := withS3(defaultPrefix, "s3-creds")
			p.Spec.NodePressure = &v1alpha1.NodePressure{MinAvailablePercent: 5}
			return p
		}(), wantReason: v1alpha1.ReasonCredentialsSecretNotFound, wantMessage: "not found"},

		"node pressure at the kubelet default": {policy: base().NodePressure(10).Obj(),
			wantReason: v1alpha1.ReasonInvalidNodePressure, wantMessage: "minAvailablePercent (10%) must be above the kubelet's eviction threshold (nodefs.available 10%, the kubelet's default;"},
		"node pressure below the kubelet default": {policy: base().NodePressure(5).Obj(),
			wantReason: v1alpha1.ReasonInvalidNodePressure, wantMessage: "minAvailablePercent (5%)"},
		"node pressure at a node's own kubelet threshold": {policy: base().NodePressure(15).Obj(),
			nodes:      nodes(kubelet("15%", "5%")),
			wantReason: v1alpha1.ReasonInvalidNodePressure, wantMessage: "not on 1 of the 1 nodes running selected pods: node-0 (nodefs.available 15%)"},
		"node pressure below one node's fractional threshold, above the other's": {policy: base().NodePressure(12).Obj(),
			nodes:      nodes(kubelet("10%", "5%"), kubelet("12.5%", "5%")),
			wantReason: v1alpha1.ReasonInvalidNodePressure, wantMessage: "not on 1 of the 2 nodes running selected pods: node-1 (nodefs.available 12.5%)"},
		"inodes at the kubelet default": {policy: inodes(15, 5),
			wantReason: v1alpha1.ReasonInvalidNodePressure, wantMessage: "minInodesFreePercent (5%)"},
		"inodes below a node's own threshold": {policy: inodes(15, 7),
			nodes:      nodes(kubelet("10%", "8%")),
			wantReason: v1alpha1.ReasonInvalidNodePressure, wantMessage: "minInodesFreePercent (7%)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := Validate(tc.policy, tc.secret, tc.nodes)
			var gotReason, gotMessage string
			if got != nil {
				gotReason, gotMessage = got.Reason, got.Message
			}
			if diff := cmp.Diff(tc.wantReason, gotReason); diff != "" {
				t.Errorf("Validate reason (-want +got):\n%s\nmessage: %s", diff, gotMessage)
			}
			if !strings.Contains(gotMessage, tc.wantMessage) {
				t.Errorf("Validate message = %q, want it to contain %q", gotMessage, tc.wantMessage)
			}
		})
	}
}
