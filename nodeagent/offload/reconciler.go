package offload

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"golang.org/x/sys/unix"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/nodeagent/discovery"
)

// +kubebuilder:rbac:groups=layerkeeper.dev,resources=layeroffloads,verbs=get;list;watch
// +kubebuilder:rbac:groups=layerkeeper.dev,resources=layeroffloads/status,verbs=get;update;patch

// NodeNameField is the LayerOffload field the agent's cache selects on (a CRD selectable
// field), so an agent sees only the offloads addressed to its node.
const NodeNameField = "spec.nodeName"

const (
	// DefaultMaxAttempts is how many times a failed offload is started before it stays Failed.
	DefaultMaxAttempts = 6
	// MaxFollow bounds how long files still being written before a restart are held open,
	// waiting for the container to stop.
	MaxFollow = 15 * time.Minute
	// FollowPoll is how often the hot paths of a stopping container are walked for new files
	// to open (rotation).
	FollowPoll = 200 * time.Millisecond
	// ExitPoll is how often the container's processes are checked while it stops: the last
	// look for new files comes at most this long after they exit, well before the kubelet
	// removes the container and its upper directory (about half a second).
	ExitPoll = 50 * time.Millisecond
	// BaseBackoff is the wait after the first failure; it doubles per attempt up to MaxBackoff.
	BaseBackoff = 30 * time.Second
	// MaxBackoff caps the wait between attempts.
	MaxBackoff = 10 * time.Minute
)

var (
	offloadsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "layerkeeper_offloads_total",
		Help: "Offload attempts finished by this agent, by phase (Succeeded, Failed).",
	}, []string{"phase"})
	offloadBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "layerkeeper_offload_bytes_total",
		Help: "Bytes uploaded to S3 and verified by this agent.",
	})
	offloadFreed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "layerkeeper_offload_freed_bytes_total",
		Help: "Allocated bytes freed in writable layers by deleting verified files.",
	})
)

func init() { metrics.Registry.MustRegister(offloadsTotal, offloadBytes, offloadFreed) }

// Reconciler carries out the LayerOffloads addressed to its node.
type Reconciler struct {
	// Client reads LayerOffloads (from a cache selecting this node) and writes their status.
	Client client.Client
	// Secrets reads credentials Secrets directly from the API server (no cluster-wide cache).
	Secrets client.Reader
	Node    string
	Clock   clock.Clock
	// Discovery finds the container on this node.
	Discovery discovery.Options
	// Workers is the number of files shipped at once per offload.
	Workers int
	// MaxAttempts bounds the retries of a failed offload (DefaultMaxAttempts).
	MaxAttempts int
	// ProgressEvery is the time between status writes while an offload runs (10s).
	ProgressEvery time.Duration
	// OnProgress, when set, is called after each progress write (tests use it).
	OnProgress func(Result)
	Log        logr.Logger
}

// SetupWithManager registers the reconciler; up to two offloads run at once.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("offload-executor").
		For(&v1alpha1.LayerOffload{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Complete(r)
}

// Backoff is the wait before attempt n+1 after n failed attempts.
func Backoff(attempts int32) time.Duration {
	d := BaseBackoff
	for i := int32(1); i < attempts; i++ {
		if d >= MaxBackoff/2 {
			return MaxBackoff
		}
		d *= 2
	}
	return min(d, MaxBackoff)
}

// Due says whether an offload should be started now, and if not, when to look again (zero:
// never, it is finished for good).
func Due(st v1alpha1.LayerOffloadStatus, maxAttempts int32, now time.Time) (bool, time.Duration) {
	switch st.Phase {
	case v1alpha1.OffloadSucceeded:
		return false, 0
	case v1alpha1.OffloadFailed:
		if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionFailed); c != nil && c.Reason == v1alpha1.ReasonContainerGone {
			return false, 0
		}
		if st.Attempts >= maxAttempts {
			return false, 0
		}
		if st.CompletionTime != nil {
			if wait := st.CompletionTime.Add(Backoff(st.Attempts)).Sub(now); wait > 0 {
				return false, wait
			}
		}
	}
	return true, 0
}

// Reconcile starts (or resumes) one offload and runs it to its end.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	lo := &v1alpha1.LayerOffload{}
	if err := r.Client.Get(ctx, req.NamespacedName, lo); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if lo.Spec.NodeName != r.Node || !lo.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	maxAttempts := int32(r.MaxAttempts)
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	due, wait := Due(lo.Status, maxAttempts, r.Clock.Now())
	if !due {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	log := r.Log.WithValues("offload", req.NamespacedName, "namespace", lo.Namespace, "pod", lo.Spec.PodName, "container", lo.Spec.ContainerName)

	c, err := r.findContainer(ctx, lo)
	if err != nil {
		log.Info("container gone", "reason", err.Error())
		return reconcile.Result{}, r.finish(ctx, lo, lo.Status, v1alpha1.ReasonContainerGone, err.Error(), true)
	}

	// Claim the attempt: Running, attempts+1. The optimistic lock makes a concurrent agent
	// (two pods of the DaemonSet during a rollout) lose the race instead of running it twice.
	base := lo.Status
	orig := lo.DeepCopy()
	now := metav1.NewTime(r.Clock.Now())
	lo.Status.Phase = v1alpha1.OffloadRunning
	lo.Status.Attempts++
	if lo.Status.StartTime == nil {
		lo.Status.StartTime = &now
	}
	lo.Status.CompletionTime = nil
	if err := r.Client.Status().Patch(ctx, lo, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	log.Info("offload started", "attempt", lo.Status.Attempts, "paths", len(lo.Spec.Paths), "bucket", lo.Spec.Target.Bucket)

	res, ex, job, runErr := r.run(ctx, lo, c, base)
	if runErr != nil && ctx.Err() != nil {
		return reconcile.Result{}, ctx.Err() // shutting down: the next agent resumes it
	}
	reason, msg, failed := v1alpha1.ReasonOffloaded, "", false
	switch {
	case errors.Is(runErr, errContainerGone):
		reason, msg, failed = v1alpha1.ReasonContainerGone, runErr.Error(), true
	case errors.As(runErr, new(*TargetError)):
		reason, msg, failed = v1alpha1.ReasonBucketUnreachable, runErr.Error(), true
	case runErr != nil:
		reason, msg, failed = v1alpha1.ReasonUploadFailed, runErr.Error(), true
	case res.FailedFiles > 0:
		reason, msg, failed = v1alpha1.ReasonUploadFailed, fmt.Sprintf("%d file(s) could not be uploaded or verified; they were kept", res.FailedFiles), true
	default:
		msg = fmt.Sprintf("%d object(s), %d bytes uploaded and verified; %d file(s) deleted, %d bytes freed; %d file(s) left in place",
			res.UploadedObjects, res.UploadedBytes, res.DeletedFiles, res.FreedBytes, res.SkippedFiles)
		if res.PresentObjects > 0 {
			msg += fmt.Sprintf("; %d object(s) an interrupted attempt had uploaded were verified, not uploaded again", res.PresentObjects)
		}
	}
	if n := len(res.Followed); n > 0 {
		msg += fmt.Sprintf("; %d active file(s) followed, shipped again once the container stops", n)
	}
	log.Info("offload finished", "failed", failed, "message", msg)
	if err := r.finish(ctx, lo, add(base, res), reason, msg, failed); err != nil {
		closeAll(res.Followed)
		return reconcile.Result{}, err
	}
	if len(res.Followed) > 0 {
		go r.shipWhenStopped(client.ObjectKeyFromObject(lo), c, ex, job, res.Followed)
	}
	if _, wait := Due(lo.Status, maxAttempts, r.Clock.Now()); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	return reconcile.Result{}, nil
}

func (r *Reconciler) run(ctx context.Context, lo *v1alpha1.LayerOffload, c *discovery.Container, base v1alpha1.LayerOffloadStatus) (Result, *Executor, Job, error) {
	var creds *Credentials
	if ref := lo.Spec.Target.CredentialsSecretRef; ref != nil {
		s := &corev1.Secret{}
		if err := r.Secrets.Get(ctx, types.NamespacedName{Namespace: lo.Namespace, Name: ref.Name}, s); err != nil {
			return Result{}, nil, Job{}, &TargetError{Reason: fmt.Sprintf("reading credentials Secret %q", ref.Name), Err: err}
		}
		var err error
		if creds, err = CredentialsFromSecret(s.Data); err != nil {
			return Result{}, nil, Job{}, &TargetError{Reason: fmt.Sprintf("credentials Secret %q", ref.Name), Err: err}
		}
	}
	cl, err := NewClient(ctx, lo.Spec.Target, creds)
	if err != nil {
		return Result{}, nil, Job{}, &TargetError{Reason: "S3 client", Err: err}
	}
	hostProc := r.Discovery.HostProc
	if hostProc == "" {
		hostProc = path.Join(cmp.Or(r.Discovery.HostRoot, "/"), "proc")
	}
	root, err := openContainerRoot(hostProc, c)
	if err != nil {
		return Result{}, nil, Job{}, err
	}
	defer root.Close()
	ex := &Executor{
		Bucket: NewBucket(cl, lo.Spec.Target.Bucket, 0), Workers: r.Workers, ProgressEvery: r.ProgressEvery,
		Progress: func(p Result) {
			orig := lo.DeepCopy()
			st := add(base, p)
			st.Phase, st.Attempts, st.StartTime = lo.Status.Phase, lo.Status.Attempts, lo.Status.StartTime
			lo.Status = st
			if err := r.Client.Status().Patch(ctx, lo, client.MergeFrom(orig)); err != nil {
				r.Log.V(1).Info("progress not written", "error", err.Error())
			}
			if r.OnProgress != nil {
				r.OnProgress(p)
			}
		},
	}
	job := Job{
		Name: lo.Namespace + "/" + lo.Name, Node: r.Node,
		Source: lo.Namespace + "/" + lo.Spec.PodName + "/" + lo.Spec.ContainerName,
		Prefix: lo.Spec.Target.Prefix, Paths: lo.Spec.Paths, IgnoreMinAge: lo.Spec.IgnoreMinAge,
		Now: r.Clock.Now(), UpperDir: c.UpperDirPath(),
		FollowActive: lo.Spec.Reason == v1alpha1.OffloadReasonBeforeRestart,
	}
	res, err := ex.Run(ctx, root, job)
	offloadBytes.Add(float64(res.UploadedBytes))
	offloadFreed.Add(float64(res.FreedBytes))
	if err != nil {
		closeAll(res.Followed)
		res.Followed = nil
	}
	return res, ex, job, err
}

func closeAll(fs []Followed) {
	for _, f := range fs {
		f.File.Close()
	}
}

// shipWhenStopped waits until none of the container's processes is left (or MaxFollow
// passes), then ships the final content of the files that were still being written before the
// restart, through the descriptors held open since, and adds the figures to the offload's
// status. The container's upper directory may be gone by then; open files outlive it.
func (r *Reconciler) shipWhenStopped(key types.NamespacedName, c *discovery.Container, ex *Executor, job Job, files []Followed) {
	ctx, cancel := context.WithTimeout(context.Background(), MaxFollow+5*time.Minute)
	defer cancel()
	hostProc := r.Discovery.HostProc
	if hostProc == "" {
		hostProc = path.Join(cmp.Or(r.Discovery.HostRoot, "/"), "proc")
	}
	// Until the container stops, files it creates (rotation) are opened and held too.
	held := map[uint64]bool{}
	for _, f := range files {
		var st unix.Stat_t
		if unix.Fstat(int(f.File.Fd()), &st) == nil {
			held[st.Ino] = true
		}
	}
	root, err := openContainerRoot(hostProc, c)
	start := time.Now()
	deadline := start.Add(MaxFollow)
	procs := watchProcesses(hostProc, c.PIDs)
	var walked time.Time
	for time.Now().Before(deadline) && procs.left() {
		if err == nil && time.Since(walked) >= FollowPoll {
			files = append(files, ex.FollowNew(root, job, held)...)
			walked = time.Now()
		}
		time.Sleep(ExitPoll)
	}
	stopped := time.Since(start)
	late := 0
	if err == nil {
		found := ex.FollowNew(root, job, held)
		late = len(found)
		files = append(files, found...)
		root.Close()
	}
	res := ex.ShipFollowed(ctx, job, files)
	log := r.Log.WithValues("offload", key)
	log.Info("followed files shipped after the container stopped", "files", len(files), "objects", res.UploadedObjects,
		"bytes", res.UploadedBytes, "failed", res.FailedFiles, "waited", stopped.Round(time.Millisecond).String(),
		"foundAfterStop", late, "rootErr", errString(err), "errors", res.Errors)
	offloadBytes.Add(float64(res.UploadedBytes))
	for attempt := 0; attempt < 5; attempt++ {
		lo := &v1alpha1.LayerOffload{}
		if err := r.Client.Get(ctx, key, lo); err != nil {
			return
		}
		orig := lo.DeepCopy()
		lo.Status.UploadedObjects += res.UploadedObjects
		lo.Status.UploadedBytes += res.UploadedBytes
		lo.Status.FailedFiles += res.FailedFiles
		lo.Status.Errors = append(lo.Status.Errors, res.Errors...)
		if len(lo.Status.Errors) > MaxErrors {
			lo.Status.Errors = lo.Status.Errors[:MaxErrors]
		}
		err := r.Client.Status().Patch(ctx, lo, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		if err == nil || !apierrors.IsConflict(err) {
			return
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// processes are a container's processes, each known by its PID and its start time, so that
// a PID the kernel hands to a new process once the container's has exited (PIDs wrap at
// pid_max, 32768 on many nodes) is not taken for the container's.
type processes struct {
	hostProc string
	started  map[int]string // PID -> start time (field 22 of /proc/<pid>/stat)
}

// watchProcesses records the start time of each PID that still runs.
func watchProcesses(hostProc string, pids []int) processes {
	ps := processes{hostProc: hostProc, started: map[int]string{}}
	for _, pid := range pids {
		if st, ok := startTime(hostProc, pid); ok {
			ps.started[pid] = st
		}
	}
	return ps
}

// left reports whether any of the processes still runs.
func (ps processes) left() bool {
	for pid, want := range ps.started {
		if st, ok := startTime(ps.hostProc, pid); ok && st == want {
			return true
		}
	}
	return false
}

// startTime reads a process's start time (clock ticks since boot) from its stat file; ok is
// false when the process is gone or the file cannot be read.
func startTime(hostProc string, pid int) (string, bool) {
	b, err := os.ReadFile(path.Join(hostProc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses; the fields after
	// the last ")" start with the state, field 3, so the start time, field 22, is the 20th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", false
	}
	return f[19], true
}

// add sums a run's counts onto what earlier attempts recorded; errors are the run's own.
func add(base v1alpha1.LayerOffloadStatus, r Result) v1alpha1.LayerOffloadStatus {
	st := base
	st.UploadedObjects += r.UploadedObjects
	st.UploadedBytes += r.UploadedBytes
	st.DeletedFiles += r.DeletedFiles
	st.FreedBytes += r.FreedBytes
	st.SkippedFiles = r.SkippedFiles
	st.FailedFiles = r.FailedFiles
	st.Errors = r.Errors
	return st
}

// finish writes the outcome: Succeeded with Complete=True, or Failed with Failed=True.
func (r *Reconciler) finish(ctx context.Context, lo *v1alpha1.LayerOffload, st v1alpha1.LayerOffloadStatus, reason, msg string, failed bool) error {
	orig := lo.DeepCopy()
	now := metav1.NewTime(r.Clock.Now())
	if lo.Status.Attempts == 0 {
		st.Attempts = 0
	} else {
		st.Attempts, st.StartTime = lo.Status.Attempts, lo.Status.StartTime
	}
	st.Conditions = lo.Status.Conditions
	st.CompletionTime = &now
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	complete := metav1.Condition{Type: v1alpha1.ConditionComplete, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: lo.Generation}
	fail := metav1.Condition{Type: v1alpha1.ConditionFailed, Status: metav1.ConditionFalse, Reason: reason, Message: msg, ObservedGeneration: lo.Generation}
	if failed {
		st.Phase = v1alpha1.OffloadFailed
		complete.Status, fail.Status = metav1.ConditionFalse, metav1.ConditionTrue
		if len(st.Errors) == 0 {
			st.Errors = []string{msg}
		}
	} else {
		st.Phase = v1alpha1.OffloadSucceeded
	}
	meta.SetStatusCondition(&st.Conditions, complete)
	meta.SetStatusCondition(&st.Conditions, fail)
	lo.Status = st
	offloadsTotal.WithLabelValues(string(st.Phase)).Inc()
	return client.IgnoreNotFound(r.Client.Status().Patch(ctx, lo, client.MergeFrom(orig)))
}

// errContainerGone says the container the offload names is not running on this node.
var errContainerGone = errors.New("container not running on this node")

func (r *Reconciler) findContainer(ctx context.Context, lo *v1alpha1.LayerOffload) (*discovery.Container, error) {
	cs, _ := discovery.Discover(ctx, r.Discovery)
	for i := range cs {
		c := &cs[i]
		if c.ID != lo.Spec.ContainerID {
			continue
		}
		if c.PodUID != "" && c.PodUID != lo.Spec.PodUID {
			return nil, fmt.Errorf("%w: container %s belongs to pod UID %s, not %s", errContainerGone, short(c.ID), c.PodUID, lo.Spec.PodUID)
		}
		if !c.Running || len(c.PIDs) == 0 {
			return nil, fmt.Errorf("%w: container %s is not running (no process to reach its files through)", errContainerGone, short(c.ID))
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w: container %s of pod %s is not on node %s (restarted or deleted)", errContainerGone, short(lo.Spec.ContainerID), lo.Spec.PodName, r.Node)
}

func short(id string) string { return id[:min(12, len(id))] }

// openContainerRoot opens the root of the first of the container's processes that still
// lives and whose root is the container's overlay.
func openContainerRoot(hostProc string, c *discovery.Container) (*Root, error) {
	var dev uint64
	if maj, mnr, ok := strings.Cut(c.MountDevice, ":"); ok {
		a, err1 := strconv.ParseUint(maj, 10, 32)
		b, err2 := strconv.ParseUint(mnr, 10, 32)
		if err1 == nil && err2 == nil {
			dev = unix.Mkdev(uint32(a), uint32(b))
		}
	}
	var errs []error
	for _, pid := range c.PIDs {
		root, err := OpenRoot(hostProc, pid, dev)
		if err == nil {
			return root, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%w: no process of container %s could be entered: %w", errContainerGone, short(c.ID), errors.Join(errs...))
}
