package offload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// Object metadata written on every object (as x-amz-meta-*). The content itself is
// identified by the server's SHA-256 checksum, not by metadata.
const (
	MetaSource   = "layerkeeper-source"
	MetaNode     = "layerkeeper-node"
	MetaModified = "layerkeeper-modified"
	MetaOffload  = "layerkeeper-offload"
)

const (
	// DefaultRegion is used when neither the target nor the environment names one.
	DefaultRegion = "us-east-1"
	// DefaultPartSize is the multipart part size of large files (each part in flight is a
	// buffer of this size).
	DefaultPartSize = 8 << 20
	// SmallFile is the largest file uploaded in one conditional PutObject from memory;
	// larger files stream through the multipart uploader.
	SmallFile = 1 << 20
	// DefaultPartConcurrency is the number of parts of one file uploaded at once.
	DefaultPartConcurrency = 4
)

// Credentials are static keys read from a Secret; nil means the default AWS chain.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// CredentialsFromSecret reads the keys of a credentials Secret.
func CredentialsFromSecret(data map[string][]byte) (*Credentials, error) {
	c := &Credentials{
		AccessKeyID:     strings.TrimSpace(string(data[v1alpha1.CredentialsKeyAccessKeyID])),
		SecretAccessKey: strings.TrimSpace(string(data[v1alpha1.CredentialsKeySecretAccessKey])),
		SessionToken:    strings.TrimSpace(string(data[v1alpha1.CredentialsKeySessionToken])),
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return nil, fmt.Errorf("the Secret needs non-empty keys %s and %s", v1alpha1.CredentialsKeyAccessKeyID, v1alpha1.CredentialsKeySecretAccessKey)
	}
	return c, nil
}

// NewClient makes an S3 client for a target: its region, endpoint and addressing, static
// credentials when given, the default AWS chain (IRSA, Pod Identity, environment) otherwise.
func NewClient(ctx context.Context, t v1alpha1.S3Target, creds *Credentials) (*s3.Client, error) {
	opts := []func(*awsconfig.LoadOptions) error{}
	if creds != nil {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)))
	}
	if t.Region != "" {
		opts = append(opts, awsconfig.WithRegion(t.Region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if t.Endpoint != "" {
			o.BaseEndpoint = aws.String(t.Endpoint)
		}
		o.UsePathStyle = t.ForcePathStyle
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}), nil
}

// Digest is what was read of a file: its size, SHA-256, and the SHA-256 of each part of
// partSize bytes (what a multipart upload's composite checksum is made of).
type Digest struct {
	Size     int64
	SHA256   []byte
	Parts    [][]byte
	PartSize int64
}

// Hex is the SHA-256 in hex.
func (d Digest) Hex() string { return hex.EncodeToString(d.SHA256) }

// Matches reports whether an S3 checksum (x-amz-checksum-sha256, as HeadObject returns it
// with checksum mode enabled) is the checksum of the bytes digested: the base64 SHA-256 of the
// whole object, or for a multipart upload the base64 SHA-256 of the parts' digests followed by
// "-<number of parts>".
func (d Digest) Matches(checksum string) bool {
	if checksum == "" {
		return false
	}
	if sum, n, ok := strings.Cut(checksum, "-"); ok {
		if n != fmt.Sprint(len(d.Parts)) {
			return false
		}
		h := sha256.New()
		for _, p := range d.Parts {
			h.Write(p)
		}
		return sum == base64.StdEncoding.EncodeToString(h.Sum(nil))
	}
	return checksum == base64.StdEncoding.EncodeToString(d.SHA256)
}

// digester hashes what passes through it: the whole stream and each part. It only has Read,
// so the uploader reads it once, in order.
type digester struct {
	r          io.Reader
	whole      hash.Hash
	part       hash.Hash
	partSize   int64
	inPart     int64
	parts      [][]byte
	n          int64
	limit      int64
	overLimits bool
}

func newDigester(r io.Reader, partSize, limit int64) *digester {
	return &digester{r: r, whole: sha256.New(), part: sha256.New(), partSize: partSize, limit: limit}
}

func (d *digester) Read(p []byte) (int, error) {
	if d.limit >= 0 && d.n >= d.limit {
		// Read no more than the size the file had when listed: a file still growing is
		// shipped as it was, and its growth keeps it from being deleted.
		var one [1]byte
		if n, _ := d.r.Read(one[:]); n > 0 {
			d.overLimits = true
		}
		return 0, io.EOF
	}
	if d.limit >= 0 && int64(len(p)) > d.limit-d.n {
		p = p[:d.limit-d.n]
	}
	if rest := d.partSize - d.inPart; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := d.r.Read(p)
	if n > 0 {
		d.whole.Write(p[:n])
		d.part.Write(p[:n])
		d.inPart += int64(n)
		d.n += int64(n)
		if d.inPart == d.partSize {
			d.parts = append(d.parts, d.part.Sum(nil))
			d.part.Reset()
			d.inPart = 0
		}
	}
	return n, err
}

func (d *digester) digest() Digest {
	parts := d.parts
	if d.inPart > 0 || len(parts) == 0 {
		parts = append(parts, d.part.Sum(nil))
	}
	return Digest{Size: d.n, SHA256: d.whole.Sum(nil), Parts: parts, PartSize: d.partSize}
}

// PartSizeFor is the part size for a file: DefaultPartSize, raised so that no file needs
// more than 9,000 parts (S3 allows 10,000).
func PartSizeFor(size int64) int64 {
	ps := int64(DefaultPartSize)
	if need := size/9000 + 1; need > ps {
		ps = (need + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return ps
}

// Bucket ships files to one bucket.
type Bucket struct {
	Client *s3.Client
	Name   string
	// PartConcurrency is the number of parts of one file in flight (DefaultPartConcurrency).
	PartConcurrency int
	up              *manager.Uploader
}

// NewBucket makes a Bucket over a client.
func NewBucket(c *s3.Client, name string, partConcurrency int) *Bucket {
	if partConcurrency <= 0 {
		partConcurrency = DefaultPartConcurrency
	}
	return &Bucket{Client: c, Name: name, PartConcurrency: partConcurrency,
		up: manager.NewUploader(c, func(u *manager.Uploader) {
			u.Concurrency = partConcurrency
			u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		})}
}

// Object is what HeadObject says of an object; nil when there is none.
type Object struct {
	Size     int64
	Checksum string
	Meta     map[string]string
}

// Head reads an object's size, SHA-256 checksum and metadata; (nil, nil) when it does not
// exist.
func (b *Bucket) Head(ctx context.Context, key string) (*Object, error) {
	out, err := b.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.Name, Key: &key, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		var nf *types.NotFound
		var nsk *types.NoSuchKey
		if errors.As(err, &nf) || errors.As(err, &nsk) {
			return nil, nil
		}
		var re interface{ HTTPStatusCode() int }
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound && !isNoSuchBucket(err) {
			return nil, nil
		}
		return nil, err
	}
	return &Object{Size: aws.ToInt64(out.ContentLength), Checksum: aws.ToString(out.ChecksumSHA256), Meta: out.Metadata}, nil
}

// Upload sends r (read once, in order) to key with a SHA-256 checksum on every request and
// returns the digest of what was sent. limit bounds the bytes read (-1: to EOF); grew
// reports that more was there.
func (b *Bucket) Upload(ctx context.Context, key string, r io.Reader, limit int64, meta map[string]string) (d Digest, grew bool, err error) {
	ps := PartSizeFor(limit)
	dg := newDigester(r, ps, limit)
	_, err = b.up.Upload(ctx, &s3.PutObjectInput{
		Bucket:            &b.Name,
		Key:               &key,
		Body:              dg,
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ContentType:       aws.String("application/octet-stream"),
		Metadata:          meta,
	}, func(u *manager.Uploader) { u.PartSize = ps })
	if err != nil {
		return Digest{}, false, err
	}
	return dg.digest(), dg.overLimits, nil
}

// errExists says a conditional upload found an object at the key.
var errExists = errors.New("an object exists at the key")

// PutSmall uploads data (a whole small file) only if no object exists at key (If-None-Match),
// with its SHA-256 checksum, which the server checks on receipt; errExists when the key is
// taken.
func (b *Bucket) PutSmall(ctx context.Context, key string, data []byte, meta map[string]string) error {
	sum := sha256.Sum256(data)
	_, err := b.Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &b.Name, Key: &key, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256, ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		IfNoneMatch: aws.String("*"), ContentType: aws.String("application/octet-stream"), Metadata: meta,
	})
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusPreconditionFailed || re.HTTPStatusCode() == http.StatusConflict) {
		return errExists
	}
	return err
}

// Verify checks that the object at key holds exactly the digested bytes: same size, and a
// SHA-256 checksum computed by the server that matches.
func (b *Bucket) Verify(ctx context.Context, key string, d Digest) error {
	o, err := b.Head(ctx, key)
	switch {
	case err != nil:
		return fmt.Errorf("verifying %s: %w", key, err)
	case o == nil:
		return fmt.Errorf("verifying %s: the object is missing", key)
	case o.Size != d.Size:
		return fmt.Errorf("verifying %s: the object has %d bytes, %d were read", key, o.Size, d.Size)
	case o.Checksum == "":
		return fmt.Errorf("verifying %s: the server returned no SHA-256 checksum, so the object cannot be verified", key)
	case !d.Matches(o.Checksum):
		return fmt.Errorf("verifying %s: checksum %s does not match what was read", key, o.Checksum)
	}
	return nil
}

// CheckBucket makes one cheap request that fails the way every upload would: a missing
// bucket, refused credentials, an unreachable endpoint.
func (b *Bucket) CheckBucket(ctx context.Context) error {
	_, err := b.Client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b.Name})
	if err != nil {
		return Classify(err, b.Name)
	}
	return nil
}

// TargetError is an error that fails every file of an offload: the bucket, the credentials or
// the endpoint. The offload stops at once and is retried later.
type TargetError struct {
	Reason string
	Err    error
}

func (e *TargetError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *TargetError) Unwrap() error { return e.Err }

// Classify turns an S3 error that no file can get past into a *TargetError with a clear
// reason; other errors are returned as they are.
func Classify(err error, bucket string) error {
	if err == nil {
		return nil
	}
	var te *TargetError
	if errors.As(err, &te) {
		return err
	}
	if isNoSuchBucket(err) {
		return &TargetError{Reason: fmt.Sprintf("bucket %q does not exist", bucket), Err: err}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "ExpiredToken", "InvalidToken":
			return &TargetError{Reason: fmt.Sprintf("credentials refused for bucket %q (%s)", bucket, ae.ErrorCode()), Err: err}
		}
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusForbidden:
			return &TargetError{Reason: fmt.Sprintf("credentials refused for bucket %q", bucket), Err: err}
		case http.StatusNotFound:
			return &TargetError{Reason: fmt.Sprintf("bucket %q does not exist", bucket), Err: err}
		}
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || (errors.As(err, &ne) && ne.Timeout()) || strings.Contains(err.Error(), "connection refused") ||
		strings.Contains(err.Error(), "no such host") || strings.Contains(err.Error(), "exceeded maximum number of attempts") {
		return &TargetError{Reason: "S3 endpoint unreachable", Err: err}
	}
	return err
}

func isNoSuchBucket(err error) bool {
	var nsb *types.NoSuchBucket
	if errors.As(err, &nsb) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket"
}

// objectMeta is the metadata of a file's object.
func objectMeta(source, node, offload string, mtime time.Time) map[string]string {
	return map[string]string{
		MetaSource:   source,
		MetaNode:     node,
		MetaOffload:  offload,
		MetaModified: mtime.UTC().Format(time.RFC3339Nano),
	}
}
