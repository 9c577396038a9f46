package evaluation

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// NodeKubelet is one node's kubelet eviction thresholds with the filesystems they apply to.
type NodeKubelet struct {
	// Node is the node's name; empty for the kubelet's defaults standing in for every node.
	Node string
	// Thresholds are the node's reported thresholds, or the defaults when it reports none.
	Thresholds KubeletThresholds
	// Reported says the thresholds come from the node's report (status.kubeletEviction).
	Reported bool
	// Filesystems are the node's filesystems holding writable layers: their capacity turns a
	// quantity threshold into a share, their kubeletFilesystem picks nodefs or imagefs.
	Filesystems []v1alpha1.FilesystemUsage
}

// NodeKubeletOf reads a node's thresholds and filesystems from its report. A report without
// status.kubeletEviction (an older agent) stands for the kubelet's defaults, as does a
// threshold that does not parse.
func NodeKubeletOf(r *v1alpha1.NodeLayerReport) NodeKubelet {
	th, _ := KubeletThresholdsOf(r.Status.KubeletEviction)
	return NodeKubelet{Node: r.Name, Thresholds: th, Reported: r.Status.KubeletEviction != nil, Filesystems: r.Status.Filesystems}
}

// maxNamedNodes bounds the nodes a ValidateNodePressure message names.
const maxNamedNodes = 5

// ValidateNodePressure reports a spec.nodePressure margin at or below the kubelet's own
// eviction threshold on any of the nodes: there the kubelet evicts pods (1 s grace, no
// PodDisruptionBudget) before layerkeeper acts. nodes are those that run pods the policy
// selects; with none, the margins are checked against the kubelet's defaults. On each node
// every filesystem holding writable layers is checked against the thresholds the kubelet
// applies to it (nodefs or imagefs), a quantity threshold against the filesystem's capacity;
// a node that reports no filesystem is checked on its nodefs percentages. It returns nil
// when the policy has no nodePressure or every margin sits above every threshold; the error
// is meant for the policy's Ready condition message and names at most five nodes.
func ValidateNodePressure(policy *v1alpha1.LayerPolicy, nodes []NodeKubelet) error {
	if policy == nil || policy.Spec.NodePressure == nil {
		return nil
	}
	np := policy.Spec.NodePressure
	if len(nodes) == 0 {
		nodes = []NodeKubelet{{Thresholds: DefaultKubeletThresholds()}}
	}
	var errs []error
	if err := validateMargin(nodes, "minAvailablePercent", np.MinAvailablePercent, PressureBytes); err != nil {
		errs = append(errs, err)
	}
	if np.MinInodesFreePercent != nil {
		if err := validateMargin(nodes, "minInodesFreePercent", *np.MinInodesFreePercent, PressureInodes); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// validateMargin checks one margin on every node and words the nodes where it does not hold.
func validateMargin(nodes []NodeKubelet, field string, margin int32, res PressureResource) error {
	var bad []string
	for i := range nodes {
		if v, ok := marginViolation(&nodes[i], margin, res); ok {
			bad = append(bad, v)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	if len(nodes) == 1 && nodes[0].Node == "" {
		return fmt.Errorf("spec.nodePressure.%s (%d%%) must be above the kubelet's eviction threshold (%s; no node running a selected pod reports its own), or the kubelet evicts pods before layerkeeper acts",
			field, margin, bad[0])
	}
	named := bad[:min(len(bad), maxNamedNodes)]
	more := ""
	if len(bad) > len(named) {
		more = fmt.Sprintf(" and %d more", len(bad)-len(named))
	}
	return fmt.Errorf("spec.nodePressure.%s (%d%%) must be above the kubelet's eviction threshold, or the kubelet evicts pods before layerkeeper acts; it is not on %d of the %d nodes running selected pods: %s%s",
		field, margin, len(bad), len(nodes), strings.Join(named, ", "), more)
}

// marginViolation returns how the node's kubelet threshold meets or exceeds the margin, for
// the first filesystem (by path) where it does: "node-a (nodefs.available 15%)", "node-b
// (imagefs.available 2Gi, 20.0% of /var/lib/containerd)". The kubelet evicts while free <
// threshold and layerkeeper acts while free < margin, so the margin holds only strictly above.
func marginViolation(n *NodeKubelet, margin int32, res PressureResource) (string, bool) {
	check := func(th FilesystemThresholds, fs *v1alpha1.FilesystemUsage) (string, bool) {
		t, suffix := th.Available, ".available"
		if res == PressureInodes {
			t, suffix = th.InodesFree, ".inodesFree"
		}
		if t.IsZero() {
			return "", false
		}
		capacity := int64(0)
		if fs != nil {
			capacity = fs.CapacityBytes
			if res == PressureInodes {
				capacity = fs.Inodes
			}
		}
		var bad bool
		detail := t.Text
		switch {
		case capacity > 0:
			bad = percentOf(capacity, margin) <= t.Of(capacity)
			if t.Quantity > 0 {
				detail += ", " + percent(t.Quantity, capacity) + " of " + fs.Path
			}
		case t.Quantity > 0:
			return "", false // no capacity to compare an absolute threshold with
		default:
			bad = float64(margin)/100 <= float64(t.Fraction)
		}
		if !bad {
			return "", false
		}
		what := th.Signal + suffix + " " + detail
		if !n.Reported {
			what += ", the kubelet's default"
		}
		return what, true
	}
	var what string
	var bad bool
	if len(n.Filesystems) == 0 {
		what, bad = check(n.Thresholds.For(v1alpha1.FilesystemUsage{}), nil)
	}
	for i := range n.Filesystems {
		fs := &n.Filesystems[i]
		if res == PressureInodes && fs.Inodes <= 0 {
			continue // no fixed number of inodes: the kubelet has no inode signal there
		}
		if what, bad = check(n.Thresholds.For(*fs), fs); bad {
			break
		}
	}
	if !bad {
		return "", false
	}
	if n.Node == "" {
		return what, true
	}
	return n.Node + " (" + what + ")", true
}

// PressureDeficit returns how many bytes and inodes must be freed on fs to get back to the
// margins of np; zero when the margin holds (available exactly at the margin holds) or is not
// set. Inodes count only on filesystems with a fixed number of inodes.
func PressureDeficit(fs v1alpha1.FilesystemUsage, np *v1alpha1.NodePressure) (bytes, inodes int64) {
	if np == nil {
		return 0, 0
	}
	bytes = max(0, percentOf(fs.CapacityBytes, np.MinAvailablePercent)-fs.AvailableBytes)
	if np.MinInodesFreePercent != nil && fs.Inodes > 0 {
		inodes = max(0, percentOf(fs.Inodes, *np.MinInodesFreePercent)-fs.InodesFree)
	}
	return bytes, inodes
}

// Candidate is a running container a node-pressure plan may escalate.
type Candidate struct {
	// ContainerID keys the candidate; Namespace, Pod and Container name it.
	ContainerID, Namespace, Pod, Container string
	// Filesystem is the path of the node filesystem holding the layer.
	Filesystem string
	// Bytes is the disk the layer holds, including deleted-but-open files: what a restart frees.
	Bytes int64
	// Inodes is the layer's number of entries: what a restart frees in inodes.
	Inodes int64
	// OffloadableBytes and OffloadableFiles estimate what an offload frees: the layer's
	// measured hot paths under the spec.hotPaths (with deleteAfterUpload) of the covering
	// node-pressure policies that can offload.
	OffloadableBytes, OffloadableFiles int64
	// MinAvailablePercent and MinInodesFreePercent are the largest margins among the policies
	// that cover the container and set spec.nodePressure (0: no margin).
	MinAvailablePercent, MinInodesFreePercent int32
}

// NodeCandidates returns the pod's running containers covered by a policy with
// spec.nodePressure, as candidates for PlanNodePressure. Policies are those selecting the pod.
func NodeCandidates(pod PodFigures, policies []*v1alpha1.LayerPolicy) []Candidate {
	var out []Candidate
	var rootBuf [8]string
	for i := range pod.Containers {
		c := &pod.Containers[i]
		if c.State == v1alpha1.ContainerStopped || c.ContainerID == "" {
			continue
		}
		cand := Candidate{
			ContainerID: c.ContainerID, Namespace: pod.Namespace, Pod: pod.Pod, Container: c.Name,
			Filesystem: c.Filesystem, Bytes: c.Bytes + c.DeletedOpenBytes, Inodes: c.Inodes,
		}
		roots := rootBuf[:0]
		for _, p := range policies {
			if p == nil || p.Spec.NodePressure == nil || !covers(p, c.Name) {
				continue
			}
			np := p.Spec.NodePressure
			cand.MinAvailablePercent = max(cand.MinAvailablePercent, np.MinAvailablePercent)
			if np.MinInodesFreePercent != nil {
				cand.MinInodesFreePercent = max(cand.MinInodesFreePercent, *np.MinInodesFreePercent)
			}
			if canOffload(p) {
				for _, hp := range p.Spec.HotPaths {
					if hp.DeleteAfterUpload == nil || *hp.DeleteAfterUpload {
						roots = append(roots, hp.Path)
					}
				}
			}
		}
		if cand.MinAvailablePercent == 0 && cand.MinInodesFreePercent == 0 {
			continue
		}
		cand.OffloadableBytes, cand.OffloadableFiles = offloadable(c.HotPaths, roots)
		if out == nil {
			out = make([]Candidate, 0, len(pod.Containers)-i)
		}
		out = append(out, cand)
	}
	return out
}

// offloadable sums the measured hot paths under roots, counting nested entries once (only
// entries with no selected ancestor count).
func offloadable(hps []v1alpha1.HotPathUsage, roots []string) (bytes, files int64) {
	if len(roots) == 0 {
		return 0, 0
	}
	selected := func(p string) bool {
		for _, r := range roots {
			if underPath(p, r) {
				return true
			}
		}
		return false
	}
	for i := range hps {
		if !selected(hps[i].Path) {
			continue
		}
		nested := false
		for j := range hps {
			if j != i && hps[j].Path != hps[i].Path && underPath(hps[i].Path, hps[j].Path) && selected(hps[j].Path) {
				nested = true
				break
			}
		}
		if !nested {
			bytes += hps[i].Bytes
			files += hps[i].Files
		}
	}
	return bytes, files
}

// PressureResource says which margin an escalation answers: free bytes or free inodes.
type PressureResource string

const (
	// PressureBytes is the minAvailablePercent margin.
	PressureBytes PressureResource = "bytes"
	// PressureInodes is the minInodesFreePercent margin.
	PressureInodes PressureResource = "inodes"
)

// Escalation is one reason a plan picked a container.
type Escalation struct {
	// Resource is the margin the escalation answers.
	Resource PressureResource
	// State is offload or restart.
	State v1alpha1.LayerState
	// AvailableBefore is the free bytes (or inodes) the plan projects before counting what
	// this escalation frees. A policy whose margin target is above it needs the escalation;
	// that keeps a container picked for a larger margin from being acted on by a policy whose
	// smaller margin the earlier picks already cover.
	AvailableBefore int64
}

// Victim is a container a node-pressure plan escalates.
type Victim struct {
	Candidate
	// FilesystemUsage is the filesystem whose margin is breached.
	FilesystemUsage v1alpha1.FilesystemUsage
	// Kubelet are the node's kubelet eviction thresholds on that filesystem: how far the
	// node is from the kubelet's own, ungraceful evictions (for messages; the plan follows
	// the policies' margins).
	Kubelet FilesystemThresholds
	// State is the highest state of its escalations.
	State v1alpha1.LayerState
	// Escalations are why it was picked, in the order of the plan.
	Escalations []Escalation
}

// stateFor is the victim's state as seen by a policy with margins np: the highest escalation
// that policy's own margin needs, and whether that was an inode escalation.
func (v *Victim) stateFor(np *v1alpha1.NodePressure) (state v1alpha1.LayerState, byInodes bool) {
	state = v1alpha1.StateOK
	for _, e := range v.Escalations {
		var target int64
		switch e.Resource {
		case PressureBytes:
			target = percentOf(v.FilesystemUsage.CapacityBytes, np.MinAvailablePercent)
		case PressureInodes:
			if np.MinInodesFreePercent == nil {
				continue
			}
			target = percentOf(v.FilesystemUsage.Inodes, *np.MinInodesFreePercent)
		}
		if target > e.AvailableBefore && (StateRank(e.State) > StateRank(state) ||
			(e.State == state && byInodes && e.Resource == PressureBytes)) {
			state, byInodes = e.State, e.Resource == PressureInodes
		}
	}
	return state, byInodes
}

// NodePressurePlan is the set of containers escalated on one node because its filesystems
// are short of free space or inodes.
type NodePressurePlan struct {
	// Victims are the escalated containers, by filesystem, largest first.
	Victims []Victim
	index   map[string]int
}

// Victim returns the plan's entry for a container ID, or nil. A nil plan has no victims.
func (p *NodePressurePlan) Victim(containerID string) *Victim {
	if p == nil {
		return nil
	}
	if i, ok := p.index[containerID]; ok {
		return &p.Victims[i]
	}
	return nil
}

// PlanNodePressure picks, per filesystem of the node, the containers that escalate because
// free space (or inodes) fell under the margin of the policies covering them. It returns nil
// when no margin is breached. kubelet are the node's kubelet eviction thresholds, carried to
// each victim for its message: whom to escalate follows the margins alone (a margin at or
// below the kubelet's threshold still acts, alongside the kubelet; the policy's Ready
// condition says so).
//
// Rule, per filesystem and per resource (bytes, then inodes), candidates largest first:
//  1. A candidate whose margin is breached escalates to offload when an offload can free
//     something (OffloadableBytes > 0) and the space counted so far does not yet cover the
//     deficit of its own margin; what its offload frees is counted.
//  2. If the offloads cannot cover the deficit, candidates escalate to restart, largest first,
//     until it is covered; a restart frees the whole layer (minus what its offload counted).
//
// The plan assumes an offload frees the measured hot-path bytes; the next report shows what
// it really freed, and a new plan escalates further if the node is still short.
func PlanNodePressure(fss []v1alpha1.FilesystemUsage, candidates []Candidate, kubelet KubeletThresholds) *NodePressurePlan {
	var plan *NodePressurePlan
	for fi := range fss {
		fs := fss[fi]
		var cands []*Candidate
		for i := range candidates {
			c := &candidates[i]
			if c.Filesystem == fs.Path || (c.Filesystem == "" && len(fss) == 1) {
				cands = append(cands, c)
			}
		}
		if len(cands) == 0 {
			continue
		}
		var victims []Victim
		record := func(c *Candidate, e Escalation) {
			for i := range victims {
				if victims[i].ContainerID == c.ContainerID {
					victims[i].Escalations = append(victims[i].Escalations, e)
					if StateRank(e.State) > StateRank(victims[i].State) {
						victims[i].State = e.State
					}
					return
				}
			}
			victims = append(victims, Victim{Candidate: *c, FilesystemUsage: fs, Kubelet: kubelet.For(fs), State: e.State, Escalations: []Escalation{e}})
		}
		byBytes := func(a, b *Candidate) int {
			return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), strings.Compare(a.ContainerID, b.ContainerID))
		}
		slices.SortFunc(cands, byBytes)
		escalate(cands, PressureBytes, fs.AvailableBytes, fs.CapacityBytes, record,
			func(c *Candidate) (int32, int64, int64) { return c.MinAvailablePercent, c.Bytes, c.OffloadableBytes })
		if fs.Inodes > 0 {
			slices.SortFunc(cands, func(a, b *Candidate) int {
				return cmp.Or(cmp.Compare(b.Inodes, a.Inodes), byBytes(a, b))
			})
			escalate(cands, PressureInodes, fs.InodesFree, fs.Inodes, record,
				func(c *Candidate) (int32, int64, int64) { return c.MinInodesFreePercent, c.Inodes, c.OffloadableFiles })
		}
		if len(victims) == 0 {
			continue
		}
		slices.SortFunc(victims, func(a, b Victim) int { return byBytes(&a.Candidate, &b.Candidate) })
		if plan == nil {
			plan = &NodePressurePlan{index: map[string]int{}}
		}
		for _, v := range victims {
			plan.index[v.ContainerID] = len(plan.Victims)
			plan.Victims = append(plan.Victims, v)
		}
	}
	return plan
}

// escalate runs the two passes of PlanNodePressure for one resource over candidates sorted
// largest first. figures returns a candidate's margin, size and offloadable amount.
func escalate(cands []*Candidate, res PressureResource, available, capacity int64,
	record func(*Candidate, Escalation), figures func(*Candidate) (margin int32, size, offload int64)) {
	var freed int64
	offloaded := make([]int64, len(cands))
	need := func(margin int32) int64 { return percentOf(capacity, margin) - available }
	for i, c := range cands {
		margin, size, off := figures(c)
		if margin <= 0 || freed >= need(margin) || off <= 0 {
			continue
		}
		off = min(off, size)
		record(c, Escalation{Resource: res, State: v1alpha1.StateOffload, AvailableBefore: available + freed})
		offloaded[i] = off
		freed += off
	}
	for i, c := range cands {
		margin, size, _ := figures(c)
		if margin <= 0 || freed >= need(margin) {
			continue
		}
		record(c, Escalation{Resource: res, State: v1alpha1.StateRestart, AvailableBefore: available + freed})
		freed += size - offloaded[i]
	}
}
