package offload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

const (
	// DefaultWorkers is the number of files shipped at once.
	DefaultWorkers = 32
	// DefaultLargeFiles is the number of files larger than SmallFile shipped at once (each
	// holds up to DefaultPartConcurrency+1 part buffers).
	DefaultLargeFiles = 2
	// DefaultMinAge is hotPaths[].minAge when unset (the API default).
	DefaultMinAge = 10 * time.Minute
	// DefaultMaxFiles bounds the files one run looks at; the rest waits for the next offload.
	DefaultMaxFiles = 100_000
	// MaxErrors is the number of error lines kept (the API's bound).
	MaxErrors = 10
)

// Job is one offload to carry out in one container.
type Job struct {
	// Name identifies the LayerOffload (namespace/name), written in each object's metadata.
	Name string
	// Node is this node's name, written in each object's metadata.
	Node string
	// Source names the container (namespace/pod/container), written in each object's metadata.
	Source string
	// Prefix is the rendered key prefix.
	Prefix string
	// Paths are the hot paths to ship.
	Paths []v1alpha1.HotPath
	// IgnoreMinAge ships files however recent.
	IgnoreMinAge bool
	// Now is the time minAge is measured from.
	Now time.Time
	// UpperDir is the container's upper directory as this process reaches it, used only to
	// stat a file before deleting it and count the bytes that frees ("" counts all).
	UpperDir string
	// FollowActive keeps the files that changed while they were uploaded open (in
	// Result.Followed), so that what the application writes until it stops can be shipped
	// once the container has stopped (Executor.ShipFollowed). Used before a restart.
	FollowActive bool
}

// Followed is a file still being written when it was shipped, held open so its final content
// can be shipped once the container stops, even after its upper directory is gone.
type Followed struct {
	Path, Key string
	File      *os.File
}

// Result is what an offload did.
type Result struct {
	UploadedObjects, UploadedBytes int64
	// PresentObjects are files whose object an earlier, interrupted attempt had already
	// uploaded: verified, not uploaded again, not counted in UploadedObjects.
	PresentObjects            int64
	DeletedFiles, FreedBytes  int64
	SkippedFiles, FailedFiles int64
	// Errors are the first MaxErrors problems, one line each.
	Errors []string
	// Followed are the files held open (Job.FollowActive); the caller ships or closes them.
	Followed []Followed
}

// Executor ships files of containers to one bucket.
type Executor struct {
	Bucket *Bucket
	// Workers is the number of files in flight (DefaultWorkers).
	Workers int
	// MaxFiles bounds the files looked at per run (DefaultMaxFiles).
	MaxFiles int
	// LargeFiles bounds the files larger than SmallFile in flight (DefaultLargeFiles).
	LargeFiles int
	// Progress, when set, is called with the counts so far every ProgressEvery.
	Progress      func(Result)
	ProgressEvery time.Duration

	large chan struct{}
}

type counters struct {
	uploadedObjects, uploadedBytes, presentObjects, deletedFiles, freedBytes, skippedFiles, failedFiles atomic.Int64
	mu                                                                                                  sync.Mutex
	errors                                                                                              []string
	followed                                                                                            []Followed
}

func (c *counters) errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errors) < MaxErrors {
		msg := fmt.Sprintf(format, args...)
		if len(msg) > 1000 {
			msg = msg[:1000] + "..."
		}
		c.errors = append(c.errors, msg)
	}
}

func (c *counters) result() Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Result{
		UploadedObjects: c.uploadedObjects.Load(), UploadedBytes: c.uploadedBytes.Load(), PresentObjects: c.presentObjects.Load(),
		DeletedFiles: c.deletedFiles.Load(), FreedBytes: c.freedBytes.Load(),
		SkippedFiles: c.skippedFiles.Load(), FailedFiles: c.failedFiles.Load(),
		Errors:   append([]string(nil), c.errors...),
		Followed: append([]Followed(nil), c.followed...),
	}
}

type task struct {
	file   File
	minAge time.Duration
	delete bool
}

// Run ships the job's files from root. It returns a *TargetError (and the counts so far) as
// soon as the bucket, the credentials or the endpoint fail; per-file problems are counted and
// listed in Result.Errors. A file is deleted only after its object is verified and when it did
// not change while it was read.
func (e *Executor) Run(ctx context.Context, root *Root, job Job) (Result, error) {
	var c counters
	if err := e.Bucket.CheckBucket(ctx); err != nil {
		return c.result(), err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	if e.Progress != nil {
		every := e.ProgressEvery
		if every <= 0 {
			every = 10 * time.Second
		}
		done := make(chan struct{})
		defer close(done)
		go func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					e.Progress(c.result())
				}
			}
		}()
	}

	workers := e.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	large := e.LargeFiles
	if large <= 0 {
		large = DefaultLargeFiles
	}
	e.large = make(chan struct{}, large)
	tasks := make(chan task)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range tasks {
				if err := e.ship(ctx, root, job, t, &c); err != nil {
					cancel(err)
				}
			}
		}()
	}

	maxFiles := e.MaxFiles
	if maxFiles <= 0 {
		maxFiles = DefaultMaxFiles
	}
	seen := 0
walk:
	for _, hp := range job.Paths {
		m, err := NewMatcher(hp.Include, hp.Exclude)
		if err != nil {
			c.errorf("hot path %s: %v", hp.Path, err)
			continue
		}
		minAge := DefaultMinAge
		if hp.MinAge != nil {
			minAge = hp.MinAge.Duration
		}
		del := hp.DeleteAfterUpload == nil || *hp.DeleteAfterUpload
		ws, err := root.Walk(hp.Path, func(f File) error {
			if !m.Match(f.Rel) {
				return nil
			}
			if seen++; seen > maxFiles {
				return errStop
			}
			select {
			case tasks <- task{file: f, minAge: minAge, delete: del}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil && ctx.Err() == nil {
			c.errorf("%v", err)
		}
		c.skippedFiles.Add(ws.Special)
		for _, werr := range ws.Errors {
			c.errorf("%v", werr)
		}
		if ctx.Err() != nil {
			break walk
		}
	}
	close(tasks)
	wg.Wait()
	if seen > maxFiles {
		c.errorf("more than %d files match; the rest waits for the next offload", maxFiles)
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return c.result(), cause
	}
	return c.result(), ctx.Err()
}

// ship carries one file; it returns an error only for a *TargetError (or a cancelled
// context), which stops the whole run.
func (e *Executor) ship(ctx context.Context, root *Root, job Job, t task, c *counters) error {
	if ctx.Err() != nil {
		return nil
	}
	p := t.file.Path
	skip := func(format string, args ...any) error {
		c.skippedFiles.Add(1)
		if format != "" {
			c.errorf(format, args...)
		}
		return nil
	}
	fail := func(err error) error {
		if err = Classify(err, e.Bucket.Name); errors.As(err, new(*TargetError)) {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		c.failedFiles.Add(1)
		c.errorf("%s: %v", p, err)
		return nil
	}
	if !job.IgnoreMinAge && job.Now.Sub(mtime(t.file.Stat)) < t.minAge {
		return skip("")
	}
	key, err := ObjectKey(job.Prefix, p)
	if err != nil {
		return skip("%s: kept: %v", p, err)
	}
	f, st, err := root.Open(p)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // gone since it was listed (rotated away by the application)
		}
		return skip("%s: kept: %v", p, err)
	}
	keepOpen := false
	defer func() {
		if !keepOpen {
			f.Close()
		}
	}()
	if !job.IgnoreMinAge && job.Now.Sub(mtime(st)) < t.minAge {
		return skip("")
	}

	d, uploaded, grew, err := e.put(ctx, key, p, f, st, job)
	if err != nil {
		return fail(err)
	}
	if uploaded {
		c.uploadedObjects.Add(1)
		c.uploadedBytes.Add(d.Size)
	} else {
		c.presentObjects.Add(1)
	}
	var after unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &after); err != nil {
		return fail(err)
	}
	changed := grew || d.Size != st.Size || after.Size != st.Size || after.Mtim != st.Mtim
	// Shipped however young (before a restart), a file written within minAge is still being
	// written by the policy's own definition, even when no byte changed during its upload (a
	// logger between two writes): deleting it would send the application's next lines into
	// an unlinked file, lost with it. It stays, and is followed.
	active := job.IgnoreMinAge && job.Now.Sub(mtime(after)) < t.minAge
	if changed || active {
		if job.FollowActive {
			keepOpen = true
			c.mu.Lock()
			c.followed = append(c.followed, Followed{Path: p, Key: key, File: f})
			c.mu.Unlock()
			if !changed {
				return skip("")
			}
			return skip("%s: kept and followed: it is still written to (%d bytes read, %d now); shipped again once the container stops", p, d.Size, after.Size)
		}
		if !changed {
			return skip("")
		}
		return skip("%s: kept: it changed while it was uploaded (%d bytes read, %d now)", p, d.Size, after.Size)
	}
	if !t.delete {
		return nil
	}
	freed := allocated(job.UpperDir, p, st)
	if err := root.Remove(p, st); err != nil {
		if errors.Is(err, errChanged) {
			return skip("%s: kept: it changed after it was verified", p)
		}
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		c.failedFiles.Add(1)
		c.errorf("%s: uploaded and verified, but deleting it failed: %v", p, err)
		return nil
	}
	c.deletedFiles.Add(1)
	c.freedBytes.Add(freed)
	return nil
}

// FollowNew opens and returns the files under the job's hot paths that are not held yet
// (held holds the inode numbers of those that are; it is updated): files the application
// created since the offload (rotated logs), so they too are shipped once it stops.
func (e *Executor) FollowNew(root *Root, job Job, held map[uint64]bool) []Followed {
	var out []Followed
	for _, hp := range job.Paths {
		m, err := NewMatcher(hp.Include, hp.Exclude)
		if err != nil {
			continue
		}
		_, _ = root.Walk(hp.Path, func(f File) error {
			if held[f.Stat.Ino] || !m.Match(f.Rel) {
				return nil
			}
			key, err := ObjectKey(job.Prefix, f.Path)
			if err != nil {
				return nil
			}
			fh, st, err := root.Open(f.Path)
			if err != nil {
				return nil
			}
			held[st.Ino] = true
			out = append(out, Followed{Path: f.Path, Key: key, File: fh})
			return nil
		})
	}
	return out
}

// ShipFollowed ships the whole current content of followed files (call it once their
// container has stopped: nothing writes to them any more) and closes them. Each goes to its key,
// or, as the key holds the earlier upload, to its alternate key; nothing is deleted.
func (e *Executor) ShipFollowed(ctx context.Context, job Job, files []Followed) Result {
	var c counters
	e.large = make(chan struct{}, max(e.LargeFiles, DefaultLargeFiles))
	for _, fl := range files {
		var st unix.Stat_t
		err := unix.Fstat(int(fl.File.Fd()), &st)
		if err == nil {
			var d Digest
			var uploaded bool
			d, uploaded, _, err = e.put(ctx, fl.Key, fl.Path, io.NewSectionReader(fl.File, 0, st.Size), st, job)
			if err == nil && uploaded {
				c.uploadedObjects.Add(1)
				c.uploadedBytes.Add(d.Size)
			}
		}
		if err != nil {
			c.failedFiles.Add(1)
			c.errorf("%s: its final content could not be shipped: %v", fl.Path, Classify(err, e.Bucket.Name))
		}
		fl.File.Close()
	}
	return c.result()
}

// put makes sure the bucket holds the file's bytes under key (or, when key holds other bytes,
// under its alternate key) and verifies them. It never overwrites an object: an offload
// retried after a crash finds the object it uploaded and verifies it instead.
func (e *Executor) put(ctx context.Context, key, p string, f io.ReadSeeker, st unix.Stat_t, job Job) (d Digest, uploaded, grew bool, err error) {
	meta := objectMeta(url.PathEscape(job.Source)+":"+url.PathEscape(p), job.Node, job.Name, mtime(st))
	if st.Size <= SmallFile {
		// One read into memory, one conditional PUT that never overwrites, one HEAD.
		buf := make([]byte, st.Size+1)
		n, err := io.ReadFull(f, buf)
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return Digest{}, false, false, err
		}
		grew = int64(n) > st.Size
		data := buf[:min(int64(n), st.Size)]
		d = digestBytes(data)
		switch err := e.Bucket.PutSmall(ctx, key, data, meta); {
		case err == nil:
			if err := e.Bucket.Verify(ctx, key, d); err != nil {
				return Digest{}, false, false, err
			}
			return d, true, grew, nil
		case errors.Is(err, errExists):
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return Digest{}, false, false, err
			}
		default:
			return Digest{}, false, false, err
		}
	} else {
		select {
		case e.large <- struct{}{}:
			defer func() { <-e.large }()
		case <-ctx.Done():
			return Digest{}, false, false, ctx.Err()
		}
	}
	existing, err := e.Bucket.Head(ctx, key)
	if err != nil {
		return Digest{}, false, false, err
	}
	if existing != nil {
		if d, err = digestOf(f, st.Size); err != nil {
			return Digest{}, false, false, err
		}
		if existing.Size == d.Size && d.Matches(existing.Checksum) {
			return d, false, false, nil
		}
		key = alternateKey(key, d.Hex())
		alt, err := e.Bucket.Head(ctx, key)
		switch {
		case err != nil:
			return Digest{}, false, false, err
		case alt != nil && alt.Size == d.Size && d.Matches(alt.Checksum):
			return d, false, false, nil
		case alt != nil:
			return Digest{}, false, false, fmt.Errorf("both %s and its alternate key hold other content; kept", key)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return Digest{}, false, false, err
		}
	}
	if d, grew, err = e.Bucket.Upload(ctx, key, f, st.Size, meta); err != nil {
		return Digest{}, false, false, err
	}
	if err := e.Bucket.Verify(ctx, key, d); err != nil {
		return Digest{}, false, false, err
	}
	return d, true, grew, nil
}

func digestBytes(b []byte) Digest {
	dg := newDigester(bytes.NewReader(b), PartSizeFor(int64(len(b))), int64(len(b)))
	_, _ = io.Copy(io.Discard, dg)
	return dg.digest()
}

// digestOf reads size bytes of f as an upload would (same part size).
func digestOf(f io.Reader, size int64) (Digest, error) {
	dg := newDigester(f, PartSizeFor(size), size)
	if _, err := io.Copy(io.Discard, dg); err != nil {
		return Digest{}, err
	}
	return dg.digest(), nil
}

func mtime(st unix.Stat_t) time.Time { return time.Unix(st.Mtim.Sec, st.Mtim.Nsec) }

// allocated is what deleting the file frees: its allocated bytes when it sits in the upper
// directory (not an image file, which only gets a whiteout) and has no other link.
func allocated(upperDir, p string, st unix.Stat_t) int64 {
	if st.Nlink > 1 {
		return 0
	}
	if upperDir != "" {
		var up unix.Stat_t
		if err := unix.Lstat(filepath.Join(upperDir, p), &up); err != nil || up.Ino != st.Ino && up.Size != st.Size {
			return 0
		}
	}
	return st.Blocks * 512
}
