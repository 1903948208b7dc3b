package s3test_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/mcc-bridge/bridge/connectors/s3/s3test"
)

const role = "arn:aws:iam::111122223333:role/reader"

var base = s3test.Keys{AccessKeyID: "AKIATESTBASE", SecretAccessKey: "base-secret-0123456789"}

func setup(t *testing.T) (*s3test.STS, *s3test.S3) {
	t.Helper()
	st := s3test.NewSTS(s3test.STSConfig{Base: base, RoleARN: role, ExternalID: "ext-1"})
	t.Cleanup(st.Close)
	srv, err := s3test.NewS3(s3test.S3Config{STS: st, Buckets: []string{"bkt"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if err := srv.Put("bkt", "k", "text/plain", []byte("v")); err != nil {
		t.Fatal(err)
	}
	return st, srv
}

func assume(t *testing.T, st *s3test.STS, keys s3test.Keys, ext string) (aws.Credentials, error) {
	t.Helper()
	c := sts.New(sts.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(st.URL), Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider(keys.AccessKeyID, keys.SecretAccessKey, keys.SessionToken),
	})
	out, err := c.AssumeRole(t.Context(), &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("test"), ExternalId: aws.String(ext)})
	if err != nil {
		return aws.Credentials{}, err
	}
	return aws.Credentials{
		AccessKeyID: *out.Credentials.AccessKeyId, SecretAccessKey: *out.Credentials.SecretAccessKey,
		SessionToken: *out.Credentials.SessionToken, CanExpire: true, Expires: *out.Credentials.Expiration,
	}, nil
}

func code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

func TestAssumeRole(t *testing.T) {
	tests := []struct {
		name     string
		keys     s3test.Keys
		ext      string
		wantCode string
	}{
		{"ok", base, "ext-1", ""},
		{"wrong external id", base, "ext-2", "AccessDenied"},
		{"wrong secret", s3test.Keys{AccessKeyID: base.AccessKeyID, SecretAccessKey: "nope"}, "ext-1", "SignatureDoesNotMatch"},
		{"unknown key", s3test.Keys{AccessKeyID: "AKIAOTHER", SecretAccessKey: base.SecretAccessKey}, "ext-1", "InvalidClientTokenId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := setup(t)
			creds, err := assume(t, st, tt.keys, tt.ext)
			if got := code(err); got != tt.wantCode {
				t.Fatalf("got code %q (%v), want %q", got, err, tt.wantCode)
			}
			if tt.wantCode == "" && (!strings.HasPrefix(creds.AccessKeyID, "ASIA") || creds.SessionToken == "" || creds.Expires.IsZero()) {
				t.Errorf("got credentials %s/%v, want ASIA keys with a session token and expiry", creds.AccessKeyID, creds.Expires)
			}
		})
	}
}

// TestS3Authenticates: the S3 front verifies SigV4 against the keys STS
// issued, and the session token.
func TestS3Authenticates(t *testing.T) {
	st, srv := setup(t)
	good, err := assume(t, st, base, "ext-1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		creds    aws.Credentials
		wantCode string
	}{
		{"issued keys", good, ""},
		{"wrong secret", aws.Credentials{AccessKeyID: good.AccessKeyID, SecretAccessKey: "x" + good.SecretAccessKey, SessionToken: good.SessionToken}, "SignatureDoesNotMatch"},
		{"no session token", aws.Credentials{AccessKeyID: good.AccessKeyID, SecretAccessKey: good.SecretAccessKey}, "InvalidToken"},
		{"base keys", aws.Credentials{AccessKeyID: base.AccessKeyID, SecretAccessKey: base.SecretAccessKey}, "InvalidAccessKeyId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := awss3.New(awss3.Options{
				Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, Retryer: aws.NopRetryer{},
				Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return tt.creds, nil }),
			})
			out, err := c.GetObject(t.Context(), &awss3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k")})
			if got := code(err); got != tt.wantCode {
				t.Fatalf("got code %q (%v), want %q", got, err, tt.wantCode)
			}
			if err == nil {
				out.Body.Close()
			}
		})
	}
	st.RevokeAll()
	c := awss3.New(awss3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, Retryer: aws.NopRetryer{},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return good, nil })})
	if _, err := c.HeadBucket(t.Context(), &awss3.HeadBucketInput{Bucket: aws.String("bkt")}); err == nil {
		t.Error("revoked keys: got success, want a refusal")
	}
	if _, err := c.ListObjectsV2(t.Context(), &awss3.ListObjectsV2Input{Bucket: aws.String("bkt")}); code(err) != "ExpiredToken" {
		t.Errorf("revoked keys: got %v, want ExpiredToken", err)
	}
}
