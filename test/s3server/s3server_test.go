package s3server

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestServerRoundTripAndRestart proves the harness gives a real S3 server: an object with a
// checksum survives a stop and restart on the same address.
func TestServerRoundTripAndRestart(t *testing.T) {
	srv := Start(t)
	bucket := srv.CreateBucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	body := []byte("line 1\nline 2\n")
	c := srv.Client()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("ns/pod/app.log"), Body: bytes.NewReader(body),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("ns/pod/app.log")}); err == nil {
		t.Fatal("the stopped server still answers")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("ns/pod/app.log"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if head.ChecksumSHA256 == nil || *head.ChecksumSHA256 == "" {
		t.Error("HeadObject returned no SHA-256 checksum")
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("ns/pod/app.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	got, _ := io.ReadAll(out.Body)
	if !bytes.Equal(got, body) {
		t.Errorf("object = %q, want %q", got, body)
	}
}
