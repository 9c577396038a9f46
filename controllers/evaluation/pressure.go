package evaluation

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// Kubelet eviction defaults (nodefs.available and nodefs.inodesFree), used when
// KubeletThresholds leaves a field at zero.
const (
	DefaultKubeletNodefsAvailablePercent  = 10.0
	DefaultKubeletNodefsInodesFreePercent = 5.0
)

// KubeletThresholds are the kubelet's hard eviction thresholds for the node filesystem, in
// percent; zero fields mean the kubelet defaults.
type KubeletThresholds struct {
	// NodefsAvailablePercent is evictionHard nodefs.available (default 10).
	NodefsAvailablePercent float64
	// NodefsInodesFreePercent is evictionHard nodefs.inodesFree (default 5).
	NodefsInodesFreePercent float64
}

// ValidateNodePressure reports a spec.nodePressure margin at or below the kubelet's own
// eviction threshold: the kubelet would evict pods (1 s grace, no PodDisruptionBudget) before
// layerkeeper acts. It returns nil when the policy has no nodePressure or the margins sit
// above the kubelet's; the error is meant for the policy's Ready condition message.
func ValidateNodePressure(policy *v1alpha1.LayerPolicy, kubelet KubeletThresholds) error {
	if policy == nil || policy.Spec.NodePressure == nil {
		return nil
	}
	np := policy.Spec.NodePressure
	avail := kubelet.NodefsAvailablePercent
	if avail <= 0 {
		avail = DefaultKubeletNodefsAvailablePercent
	}
	inodes := kubelet.NodefsInodesFreePercent
	if inodes <= 0 {
		inodes = DefaultKubeletNodefsInodesFreePercent
	}
	var errs []error
	if float64(np.MinAvailablePercent) <= avail {
		errs = append(errs, fmt.Errorf("spec.nodePressure.minAvailablePercent (%d%%) must be above the kubelet's nodefs.available eviction threshold (%s%%), or the kubelet evicts pods before layerkeeper acts",
			np.MinAvailablePercent, trimFloat(avail)))
	}
	if np.MinInodesFreePercent != nil && float64(*np.MinInodesFreePercent) <= inodes {
		errs = append(errs, fmt.Errorf("spec.nodePressure.minInodesFreePercent (%d%%) must be above the kubelet's nodefs.inodesFree eviction threshold (%s%%), or the kubelet evicts pods before layerkeeper acts",
			*np.MinInodesFreePercent, trimFloat(inodes)))
	}
	return errors.Join(errs...)
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.2f", f)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
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
// when no margin is breached.
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
func PlanNodePressure(fss []v1alpha1.FilesystemUsage, candidates []Candidate) *NodePressurePlan {
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
			victims = append(victims, Victim{Candidate: *c, FilesystemUsage: fs, State: e.State, Escalations: []Escalation{e}})
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
