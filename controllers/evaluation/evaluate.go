package evaluation

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// DefaultStaleAfter is used when Input.StaleAfter is not positive; it matches the
// controller's --stale-after default.
const DefaultStaleAfter = 5 * time.Minute

// ActionKind is the step of the remediation ladder a policy asks for.
type ActionKind string

const (
	// ActionNone: nothing to do beyond annotations, condition, events and metrics.
	ActionNone ActionKind = "None"
	// ActionOffload: ship the container's hot-path files to S3 (a LayerOffload).
	ActionOffload ActionKind = "Offload"
	// ActionRestart: restart the workload or evict the pod, within the safety limits that
	// CheckRemediation applies.
	ActionRestart ActionKind = "Restart"
)

// actionRank orders action kinds, weakest first.
func actionRank(k ActionKind) int {
	switch k {
	case ActionOffload:
		return 1
	case ActionRestart:
		return 2
	default:
		return 0
	}
}

// Action is what an Enforce policy asks for now, before the remediation safety limits.
type Action struct {
	// Kind is None, Offload or Restart.
	Kind ActionKind
	// Policy is the Enforce policy that asks for it; its spec.hotPaths, spec.offload and
	// spec.remediation apply. Empty when Kind is None.
	Policy string
	// Container is the container the action is for (for Restart, the one that forces it).
	Container string
	// OffloadFirst, for Restart, says to ship the pod's remaining hot-path files before the
	// restart: spec.remediation.offloadBeforeRestart (default true) and the policy can offload
	// (spec.offload.s3 and spec.hotPaths are set).
	OffloadFirst bool
}

// Input is everything Evaluate needs to decide one pod.
type Input struct {
	// Policies are all the LayerPolicies that select the pod (the caller matches selectors).
	Policies []*v1alpha1.LayerPolicy
	// Pod are the pod's figures.
	Pod PodFigures
	// Now is the time of the evaluation.
	Now time.Time
	// StaleAfter is the age past which a report's figures are not acted on;
	// DefaultStaleAfter when not positive.
	StaleAfter time.Duration
	// NodePressure is the plan for the pod's node (PlanNodePressure); nil when the node is
	// not short of space or no plan was made.
	NodePressure *NodePressurePlan
}

// Decision is the verdict on one pod.
type Decision struct {
	// Pod is the pod's name (from Input.Pod).
	Pod string
	// State is the pod's state: its worst covered container's.
	State v1alpha1.LayerState
	// Status is the WritableLayerWithinLimits condition status: True (state ok), False (over
	// a threshold or escalated by node pressure) or Unknown (no or stale figures).
	Status metav1.ConditionStatus
	// Reason is a WritableLayerWithinLimits reason from api/v1alpha1.
	Reason string
	// Message says, for people, which container, how large, which limit and why.
	Message string
	// Container, Bytes and HotPath describe the deciding (worst) container.
	Container string
	Bytes     int64
	HotPath   string
	// Policy is the policy whose threshold (or node-pressure margin) decided the state; for
	// state ok, the policy with the nearest threshold. Empty without figures.
	Policy string
	// Predicted is true when the state comes from the growth rate reaching a threshold
	// within thresholds.leadTime rather than from the current size.
	Predicted bool
	// Action is the strongest action any Enforce policy asks for now, over all containers.
	Action Action
	// TimeToLimit estimates, at the deciding container's growth rate, when it reaches the
	// next threshold above its current size; nil when it does not grow or there is none.
	TimeToLimit *time.Duration
	// Overlapping names the other policies selecting the pod (all of them when Policy is
	// empty), sorted; nil when only one policy selects it.
	Overlapping []string
	// Containers has one entry per evaluated (running, covered) container, in input order.
	Containers []ContainerDecision
	// PolicyStates has one entry per selecting policy, in input order: the pod's state under
	// that policy alone, for the policy's own status counts and offenders.
	PolicyStates []PolicyState
}

// ContainerDecision is the verdict on one container of the pod.
type ContainerDecision struct {
	// Name and ContainerID identify the container.
	Name, ContainerID string
	// State, Reason and Policy as in Decision, for this container.
	State  v1alpha1.LayerState
	Reason string
	Policy string
	// Bytes is the container's writable-layer size; HotPath its top directory.
	Bytes   int64
	HotPath string
	// Predicted and NodePressure say where the state comes from.
	Predicted    bool
	NodePressure bool
	// Action is what an Enforce policy asks for on this container now.
	Action Action
	// TimeToLimit as in Decision, for this container.
	TimeToLimit *time.Duration
}

// PolicyState is a pod's state under one policy alone.
type PolicyState struct {
	// Policy names the policy.
	Policy string
	// State is the worst state the policy gives any container of the pod it covers.
	State v1alpha1.LayerState
	// Container, Bytes and HotPath describe that container; Container is empty when the
	// policy covers no evaluated container.
	Container string
	Bytes     int64
	HotPath   string
}

// StateRank orders states, best first (ok 0, warn 1, offload 2, restart 3).
func StateRank(s v1alpha1.LayerState) int {
	switch s {
	case v1alpha1.StateWarn:
		return 1
	case v1alpha1.StateOffload:
		return 2
	case v1alpha1.StateRestart:
		return 3
	default:
		return 0
	}
}

// reasonFor maps a state to its WritableLayerWithinLimits reason.
func reasonFor(s v1alpha1.LayerState, pressure bool) string {
	if pressure {
		return v1alpha1.ReasonNodePressure
	}
	switch s {
	case v1alpha1.StateWarn:
		return v1alpha1.ReasonOverWarn
	case v1alpha1.StateOffload:
		return v1alpha1.ReasonOverOffload
	case v1alpha1.StateRestart:
		return v1alpha1.ReasonOverRestart
	default:
		return v1alpha1.ReasonWithinLimits
	}
}

// limit is one threshold of one policy; a nil q means no threshold.
type limit struct {
	state v1alpha1.LayerState
	q     *resource.Quantity
	bytes int64
}

// verdict is one policy's view of one container.
type verdict struct {
	policy    *v1alpha1.LayerPolicy
	state     v1alpha1.LayerState
	crossed   limit         // the threshold reached (actual or predicted); q nil for ok and pressure
	predicted bool          // crossed only by the growth rate, within leadTime
	eta       time.Duration // for predicted: time to reach crossed
	lead      time.Duration // for predicted: the policy's leadTime
	next      limit         // the policy's smallest threshold above the current size; q nil if none
	pressure  bool          // state escalated by node pressure beyond any threshold
	byInodes  bool          // for pressure: the inode margin, not the byte margin, decided
}

func enforcing(p *v1alpha1.LayerPolicy) bool { return p.Spec.Mode == v1alpha1.ModeEnforce }

// canOffload says whether the policy has somewhere to ship files and something to ship.
func canOffload(p *v1alpha1.LayerPolicy) bool {
	return p.Spec.Offload != nil && p.Spec.Offload.S3 != nil && len(p.Spec.HotPaths) > 0
}

// covers says whether the policy's spec.containers includes the container.
func covers(p *v1alpha1.LayerPolicy, container string) bool {
	return len(p.Spec.Containers) == 0 || slices.Contains(p.Spec.Containers, container)
}

// judge is one policy's verdict on one container. Thresholds are checked from restart down:
// a threshold counts as crossed when bytes >= threshold ("at or over"), or when the
// container, growing, reaches it within the policy's leadTime (inclusive). Node pressure then
// escalates the verdict when the plan picked the container for a margin this policy breaches.
func judge(p *v1alpha1.LayerPolicy, c *ContainerFigures, victim *Victim) verdict {
	v := verdict{policy: p, state: v1alpha1.StateOK}
	th := &p.Spec.Thresholds
	var lead time.Duration
	if th.LeadTime != nil {
		lead = th.LeadTime.Duration
	}
	limits := [3]limit{
		{state: v1alpha1.StateRestart, q: th.Restart},
		{state: v1alpha1.StateOffload, q: th.Offload},
		{state: v1alpha1.StateWarn, q: th.Warn},
	}
	for i := range limits {
		l := &limits[i]
		if l.q == nil {
			continue
		}
		l.bytes = l.q.Value()
		if l.bytes > c.Bytes && (v.next.q == nil || l.bytes <= v.next.bytes) {
			v.next = *l
		}
	}
	for i := range limits {
		l := &limits[i]
		if l.q == nil {
			continue
		}
		if c.Bytes >= l.bytes {
			v.state, v.crossed = l.state, *l
			break
		}
		if lead > 0 {
			if eta, ok := timeToReach(l.bytes-c.Bytes, c.GrowthBytesPerMinute); ok && eta <= lead {
				v.state, v.crossed, v.predicted, v.eta, v.lead = l.state, *l, true, eta, lead
				break
			}
		}
	}
	if victim != nil && p.Spec.NodePressure != nil {
		if s, byInodes := victim.stateFor(p.Spec.NodePressure); StateRank(s) > StateRank(v.state) {
			v.state, v.pressure, v.byInodes = s, true, byInodes
			v.crossed, v.predicted, v.eta, v.lead = limit{}, false, 0, 0
		}
	}
	return v
}

// action is what the verdict's policy asks for: nothing in Audit mode; Offload at offload
// when the policy can offload; Restart at restart.
func (v *verdict) action(container string) Action {
	if !enforcing(v.policy) {
		return Action{Kind: ActionNone}
	}
	switch v.state {
	case v1alpha1.StateRestart:
		r := v.policy.Spec.Remediation.OffloadBeforeRestart
		return Action{
			Kind:         ActionRestart,
			Policy:       v.policy.Name,
			Container:    container,
			OffloadFirst: (r == nil || *r) && canOffload(v.policy),
		}
	case v1alpha1.StateOffload:
		if canOffload(v.policy) {
			return Action{Kind: ActionOffload, Policy: v.policy.Name, Container: container}
		}
	}
	return Action{Kind: ActionNone}
}

// beats orders two policies' verdicts on the same container; the winner decides. Higher state
// first. At the same state above ok: an Enforce policy before an Audit one (so an observing
// policy never hides an enforcing one), a threshold before node pressure, an actual size
// before a prediction, then the smaller threshold. At ok: the nearest next threshold. Last,
// the policy name.
func (a *verdict) beats(b *verdict) bool {
	if ra, rb := StateRank(a.state), StateRank(b.state); ra != rb {
		return ra > rb
	}
	if a.state != v1alpha1.StateOK {
		if ea, eb := enforcing(a.policy), enforcing(b.policy); ea != eb {
			return ea
		}
		if a.pressure != b.pressure {
			return !a.pressure
		}
		if a.predicted != b.predicted {
			return !a.predicted
		}
		if a.crossed.q != nil && b.crossed.q != nil && a.crossed.bytes != b.crossed.bytes {
			return a.crossed.bytes < b.crossed.bytes
		}
	} else if (a.next.q == nil) != (b.next.q == nil) {
		return a.next.q != nil
	} else if a.next.q != nil && a.next.bytes != b.next.bytes {
		return a.next.bytes < b.next.bytes
	}
	return a.policy.Name < b.policy.Name
}

// containerEval is the working state of one container.
type containerEval struct {
	fig      *ContainerFigures
	decide   verdict
	next     limit // smallest threshold above the size, over all covering policies; q nil if none
	nextPol  *v1alpha1.LayerPolicy
	eta      *time.Duration
	hot      v1alpha1.HotPathUsage
	hasHot   bool
	action   Action
	victim   *Victim
	decision ContainerDecision
}

// Evaluate decides one pod's state, reason, message and the action its policies ask for now.
//
// Rules:
//   - No report (ReportTime nil), or no running container the policies cover in it:
//     Unknown/NoFigures, state ok, no action. A report older than StaleAfter (strictly):
//     Unknown/StaleFigures, no action.
//   - Each running container is judged by every policy whose spec.containers covers it. A
//     policy's threshold counts as crossed when bytes >= threshold ("at or over"), or when
//     the growth rate reaches it within thresholds.leadTime (inclusive; zero or negative
//     growth never predicts). Node pressure (Input.NodePressure) raises a policy's verdict to
//     the plan's offload or restart when the plan picked the container for a margin that
//     policy's own spec.nodePressure needs. The worst verdict of all policies wins; without
//     leadTime this is exactly "per threshold, the smallest value among the policies wins".
//   - Among verdicts at the same state the deciding policy is: an Enforce one before an Audit
//     one, a threshold before node pressure, an actual size before a prediction, the smaller
//     threshold, then the name. At state ok it is the policy with the nearest threshold.
//   - The pod's state is its worst container's (ties: the larger container, then the name).
//   - Actions come only from Enforce policies: a container's action is the strongest any
//     Enforce policy covering it asks for, even when an Audit policy decided a higher state.
//     The pod's action is its strongest container action. Audit-only pods never get one.
func Evaluate(in Input) Decision {
	pod := &in.Pod
	policies := in.Policies
	if slices.Contains(policies, nil) {
		policies = slices.DeleteFunc(slices.Clone(policies), func(p *v1alpha1.LayerPolicy) bool { return p == nil })
	}
	d := Decision{Pod: pod.Pod, State: v1alpha1.StateOK, Action: Action{Kind: ActionNone}}
	if len(policies) == 0 {
		d.Status, d.Reason = metav1.ConditionTrue, v1alpha1.ReasonWithinLimits
		d.Message = fmt.Sprintf("no LayerPolicy selects pod %q", pod.Pod)
		return d
	}
	d.PolicyStates = make([]PolicyState, len(policies))
	for i, p := range policies {
		d.PolicyStates[i] = PolicyState{Policy: p.Name, State: v1alpha1.StateOK}
	}
	if pod.ReportTime == nil {
		d.Status, d.Reason = metav1.ConditionUnknown, v1alpha1.ReasonNoFigures
		if pod.Node == "" {
			d.Message = fmt.Sprintf("no figures for pod %q yet: no node report measures it", pod.Pod)
		} else {
			d.Message = fmt.Sprintf("no figures for pod %q yet: node %q has not reported a scan", pod.Pod, pod.Node)
		}
		d.Overlapping = overlapping(policies, "")
		return d
	}
	staleAfter := in.StaleAfter
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	if age := in.Now.Sub(*pod.ReportTime); age > staleAfter {
		d.Status, d.Reason = metav1.ConditionUnknown, v1alpha1.ReasonStaleFigures
		d.Message = fmt.Sprintf("figures for pod %q are stale: node %q last reported %s ago (stale after %s); no action is taken on them",
			pod.Pod, pod.Node, ageString(age), compactDuration(staleAfter))
		d.Overlapping = overlapping(policies, "")
		return d
	}

	var buf [8]containerEval // most pods have few containers: keep their working state off the heap
	evals := buf[:0]
	etas := make([]time.Duration, len(pod.Containers))
	for i := range pod.Containers {
		c := &pod.Containers[i]
		if c.State == v1alpha1.ContainerStopped {
			continue
		}
		var victim *Victim
		if c.ContainerID != "" {
			victim = in.NodePressure.Victim(c.ContainerID)
		}
		e := containerEval{fig: c, victim: victim, action: Action{Kind: ActionNone}}
		covered := false
		for pi, p := range policies {
			if !covers(p, c.Name) {
				continue
			}
			v := judge(p, c, victim)
			if !covered || v.beats(&e.decide) {
				e.decide = v
			}
			covered = true
			if v.next.q != nil && (e.next.q == nil || v.next.bytes < e.next.bytes ||
				(v.next.bytes == e.next.bytes && p.Name < e.nextPol.Name)) {
				e.next, e.nextPol = v.next, p
			}
			if a := v.action(c.Name); actionRank(a.Kind) > actionRank(e.action.Kind) ||
				(a.Kind != ActionNone && a.Kind == e.action.Kind && a.Policy < e.action.Policy) {
				e.action = a
			}
			ps := &d.PolicyStates[pi]
			if ps.Container == "" || StateRank(v.state) > StateRank(ps.State) ||
				(v.state == ps.State && c.Bytes > ps.Bytes) {
				ps.State, ps.Container, ps.Bytes = v.state, c.Name, c.Bytes
				ps.HotPath = "" // filled below once the hot path is known
			}
		}
		if !covered {
			continue
		}
		e.hot, e.hasHot = TopHotPath(c.HotPaths)
		if e.next.q != nil {
			if eta, ok := timeToReach(e.next.bytes-c.Bytes, c.GrowthBytesPerMinute); ok {
				etas[i] = eta
				e.eta = &etas[i]
			}
		}
		e.decision = ContainerDecision{
			Name:         c.Name,
			ContainerID:  c.ContainerID,
			State:        e.decide.state,
			Reason:       reasonFor(e.decide.state, e.decide.pressure),
			Policy:       e.decide.policy.Name,
			Bytes:        c.Bytes,
			HotPath:      e.hot.Path,
			Predicted:    e.decide.predicted,
			NodePressure: e.decide.pressure,
			Action:       e.action,
			TimeToLimit:  e.eta,
		}
		evals = append(evals, e)
	}
	if len(evals) == 0 {
		d.Status, d.Reason = metav1.ConditionUnknown, v1alpha1.ReasonNoFigures
		d.Message = fmt.Sprintf("no figures for pod %q: node %q reports no running container the selecting policies cover (%s)",
			pod.Pod, pod.Node, coveredNames(policies))
		d.Overlapping = overlapping(policies, "")
		return d
	}
	for i := range d.PolicyStates {
		ps := &d.PolicyStates[i]
		for j := range evals {
			if evals[j].fig.Name == ps.Container {
				ps.HotPath = evals[j].hot.Path
				break
			}
		}
	}

	worst, strongest, over := 0, 0, 0
	for i := 1; i < len(evals); i++ {
		a, w := &evals[i], &evals[worst]
		if ra, rw := StateRank(a.decide.state), StateRank(w.decide.state); ra > rw ||
			(ra == rw && (a.fig.Bytes > w.fig.Bytes || (a.fig.Bytes == w.fig.Bytes && a.fig.Name < w.fig.Name))) {
			worst = i
		}
		s := &evals[strongest]
		if ra, rs := actionRank(a.action.Kind), actionRank(s.action.Kind); ra > rs ||
			(ra == rs && a.fig.Bytes > s.fig.Bytes) {
			strongest = i
		}
	}
	d.Containers = make([]ContainerDecision, len(evals))
	for i := range evals {
		d.Containers[i] = evals[i].decision
		if i != worst && evals[i].decide.state != v1alpha1.StateOK {
			over++
		}
	}
	w := &evals[worst]
	d.State = w.decide.state
	d.Reason = w.decision.Reason
	d.Status = metav1.ConditionFalse
	if d.State == v1alpha1.StateOK {
		d.Status = metav1.ConditionTrue
	}
	d.Container, d.Bytes, d.HotPath = w.fig.Name, w.fig.Bytes, w.hot.Path
	d.Policy, d.Predicted, d.TimeToLimit = w.decide.policy.Name, w.decide.predicted, w.eta
	d.Action = evals[strongest].action
	d.Message = message(pod, w, over)
	d.Overlapping = overlapping(policies, d.Policy)
	return d
}

// overlapping lists the names of the policies other than decided, sorted; nil for one policy.
func overlapping(policies []*v1alpha1.LayerPolicy, decided string) []string {
	if len(policies) < 2 {
		return nil
	}
	out := make([]string, 0, len(policies))
	for _, p := range policies {
		if p.Name != decided && !slices.Contains(out, p.Name) {
			out = append(out, p.Name)
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return out
}

// coveredNames describes which containers the policies cover, for messages.
func coveredNames(policies []*v1alpha1.LayerPolicy) string {
	var names []string
	for _, p := range policies {
		if len(p.Spec.Containers) == 0 {
			return "all containers"
		}
		for _, c := range p.Spec.Containers {
			if !slices.Contains(names, c) {
				names = append(names, c)
			}
		}
	}
	slices.Sort(names)
	return "containers " + strings.Join(names, ", ")
}

// message writes the human explanation of the deciding container's verdict. It runs for
// every pod of every pass, so it appends to one builder instead of formatting with fmt.
func message(pod *PodFigures, e *containerEval, othersOver int) string {
	c, v := e.fig, &e.decide
	var b strings.Builder
	b.Grow(320)
	w := b.WriteString
	policy := func(name string) { w(" (policy "); w(strconv.Quote(name)); w(")") }
	w("container ")
	w(strconv.Quote(c.Name))
	w(" of pod ")
	w(strconv.Quote(pod.Pod))
	w(" uses ")
	w(HumanBytes(c.Bytes))
	w(" of writable layer")
	switch {
	case v.pressure:
		fs := e.victim.FilesystemUsage
		np := v.policy.Spec.NodePressure
		w("; node filesystem ")
		w(fs.Path)
		if v.byInodes {
			w(" has ")
			w(percent(fs.InodesFree, fs.Inodes))
			w(" of its inodes free (")
			w(strconv.FormatInt(fs.InodesFree, 10))
			w(" of ")
			w(strconv.FormatInt(fs.Inodes, 10))
			w("), under the ")
			w(strconv.Itoa(int(*np.MinInodesFreePercent)))
			w("% inode margin of policy ")
			w(strconv.Quote(v.policy.Name))
			kubeletThreshold(w, e.victim.Kubelet.Signal+".inodesFree", e.victim.Kubelet.InodesFree)
		} else {
			w(" has ")
			w(percent(fs.AvailableBytes, fs.CapacityBytes))
			w(" free (")
			w(HumanBytes(fs.AvailableBytes))
			w(" of ")
			w(HumanBytes(fs.CapacityBytes))
			w("), under the ")
			w(strconv.Itoa(int(np.MinAvailablePercent)))
			w("% margin of policy ")
			w(strconv.Quote(v.policy.Name))
			kubeletThreshold(w, e.victim.Kubelet.Signal+".available", e.victim.Kubelet.Available)
		}
		w(", and it is among the node's largest containers: escalated to ")
		w(string(v.state))
	case v.predicted:
		w(" and will reach the ")
		w(string(v.crossed.state))
		w(" threshold ")
		w(v.crossed.q.String())
		w(" in ")
		w(approxDuration(v.eta))
		w(" at ")
		w(humanRate(c.GrowthBytesPerMinute))
		w(", within the lead time ")
		w(compactDuration(v.lead))
		policy(v.policy.Name)
	case v.crossed.q != nil:
		if c.Bytes == v.crossed.bytes {
			w(", at the ")
		} else {
			w(", over the ")
		}
		w(string(v.crossed.state))
		w(" threshold ")
		w(v.crossed.q.String())
		policy(v.policy.Name)
	case v.next.q != nil:
		w(", under the ")
		w(string(v.next.state))
		w(" threshold ")
		w(v.next.q.String())
		policy(v.policy.Name)
	default:
		w(", no threshold set")
		policy(v.policy.Name)
	}
	sep := "; "
	if e.hasHot {
		w("; largest directory ")
		w(e.hot.Path)
		w(" (")
		w(HumanBytes(e.hot.Bytes))
		w(")")
		sep = ", "
	}
	if !v.predicted && c.GrowthBytesPerMinute > 0 {
		w(sep)
		w("growing ")
		w(humanRate(c.GrowthBytesPerMinute))
		if e.eta != nil && e.next.q != nil {
			w(", reaching the ")
			w(string(e.next.state))
			w(" threshold ")
			w(e.next.q.String())
			if e.nextPol != v.policy {
				w(" of policy ")
				w(strconv.Quote(e.nextPol.Name))
			}
			w(" in ")
			w(approxDuration(*e.eta))
		}
	}
	switch othersOver {
	case 0:
	case 1:
		w("; 1 more container of the pod is over a threshold")
	default:
		w("; ")
		w(strconv.Itoa(othersOver))
		w(" more containers of the pod are over a threshold")
	}
	return b.String()
}
