package offload

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
	"github.com/layerkeeper/layerkeeper/controllers/remediation"
)

const (
	// DefaultTTL is spec.offload.ttlAfterFinished when unset (the API default).
	DefaultTTL = 24 * time.Hour
	// MaxHistory bounds the finished LayerOffloads kept per policy, newest first.
	MaxHistory = 50
	// AnnotationReported, on a LayerOffload, records the phase and attempt already told in an
	// event, so a restarted controller does not tell it twice.
	AnnotationReported = "layerkeeper.dev/reported"
)

// Reconciler reports finished offloads and collects old ones.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
}

// +kubebuilder:rbac:groups=layerkeeper.dev,resources=layeroffloads,verbs=get;list;watch;update;patch;delete

// Expired says which finished offloads of one policy to delete now: those finished longer
// than ttl ago, and beyond the newest MaxHistory. It also says when the next one expires.
func Expired(finished []v1alpha1.LayerOffload, ttl time.Duration, now time.Time) (del []string, next time.Duration) {
	items := slices.Clone(finished)
	slices.SortFunc(items, func(a, b v1alpha1.LayerOffload) int { return finishedAt(&b).Compare(finishedAt(&a)) })
	for i := range items {
		age := now.Sub(finishedAt(&items[i]))
		if i >= MaxHistory || age >= ttl {
			del = append(del, items[i].Name)
			continue
		}
		if left := ttl - age; next == 0 || left < next {
			next = left
		}
	}
	return del, next
}

func finishedAt(lo *v1alpha1.LayerOffload) time.Time {
	if lo.Status.CompletionTime != nil {
		return lo.Status.CompletionTime.Time
	}
	return lo.CreationTimestamp.Time
}

// Reconcile handles one LayerOffload: an event once it finishes, then the collection of its
// policy's old offloads.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	lo := &v1alpha1.LayerOffload{}
	if err := r.Client.Get(ctx, req.NamespacedName, lo); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if lo.Status.Phase == v1alpha1.OffloadSucceeded || lo.Status.Phase == v1alpha1.OffloadFailed {
		if err := r.report(ctx, lo); err != nil {
			return ctrl.Result{}, err
		}
	}
	if !remediation.Finished(lo.Status) {
		return ctrl.Result{}, nil
	}
	return r.collect(ctx, lo.Namespace, lo.Spec.PolicyName)
}

func (r *Reconciler) report(ctx context.Context, lo *v1alpha1.LayerOffload) error {
	key := fmt.Sprintf("%s/%d", lo.Status.Phase, lo.Status.Attempts)
	if lo.Annotations[AnnotationReported] == key {
		return nil
	}
	pod := &corev1.Pod{}
	podErr := r.Client.Get(ctx, client.ObjectKey{Namespace: lo.Namespace, Name: lo.Spec.PodName}, pod)
	var regarding client.Object = lo
	if podErr == nil && string(pod.UID) == lo.Spec.PodUID {
		regarding = pod
	}
	st := lo.Status
	if st.Phase == v1alpha1.OffloadSucceeded {
		r.Recorder.Eventf(regarding, lo, corev1.EventTypeNormal, v1alpha1.EventLogsOffloaded, "Offload",
			"container %q: %d file(s), %d bytes shipped to s3://%s/%s and verified; %d deleted, %d bytes freed",
			lo.Spec.ContainerName, st.UploadedObjects, st.UploadedBytes, lo.Spec.Target.Bucket, lo.Spec.Target.Prefix, st.DeletedFiles, st.FreedBytes)
	} else {
		msg := "failed"
		if len(st.Errors) > 0 {
			msg = st.Errors[0]
		}
		r.Recorder.Eventf(regarding, lo, corev1.EventTypeWarning, v1alpha1.EventOffloadFailed, "Offload",
			"container %q: offload attempt %d failed, files kept: %s", lo.Spec.ContainerName, st.Attempts, msg)
	}
	patch := client.MergeFrom(lo.DeepCopy())
	if lo.Annotations == nil {
		lo.Annotations = map[string]string{}
	}
	lo.Annotations[AnnotationReported] = key
	return client.IgnoreNotFound(r.Client.Patch(ctx, lo, patch))
}

// collect deletes the policy's expired finished offloads and requeues for the next expiry.
func (r *Reconciler) collect(ctx context.Context, ns, policy string) (ctrl.Result, error) {
	ttl := DefaultTTL
	p := &v1alpha1.LayerPolicy{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: policy}, p); err == nil {
		if o := p.Spec.Offload; o != nil && o.TTLAfterFinished != nil {
			ttl = o.TTLAfterFinished.Duration
		}
	} else if client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, err
	}
	var list v1alpha1.LayerOffloadList
	if err := r.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelPolicy: policy}); err != nil {
		return ctrl.Result{}, err
	}
	var finished []v1alpha1.LayerOffload
	for _, lo := range list.Items {
		if remediation.Finished(lo.Status) && lo.DeletionTimestamp.IsZero() {
			finished = append(finished, lo)
		}
	}
	del, next := Expired(finished, ttl, r.Clock.Now())
	for _, name := range del {
		lo := &v1alpha1.LayerOffload{}
		lo.Namespace, lo.Name = ns, name
		if err := r.Client.Delete(ctx, lo); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("offload").For(&v1alpha1.LayerOffload{}).Complete(r)
}
