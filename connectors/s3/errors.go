package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/mcc-bridge/bridge/connectors"
)

// awsFailure is what the connector keeps of an AWS error response: its
// code, status and request id, never its message (servers may echo
// request parts there).
type awsFailure struct {
	Service, Operation, Code, RequestID string
	Status                              int
	// keysRefused: S3 refused the session's assumed-role keys, which were
	// dropped; Execute then runs the operation once more with new ones.
	keysRefused bool
}

func (f *awsFailure) Error() string {
	return fmt.Sprintf("%s %s: %s (HTTP %d, request id %q)", f.Service, f.Operation, f.Code, f.Status, f.RequestID)
}

// classify maps an error of operation op (e.g. "GetObject") on target
// (bucket or bucket/key) to a *connectors.Error. It drops s's cached
// assumed-role keys when S3 refuses them, so the next request assumes
// the role again.
//
// The mapping:
//   - NoSuchKey, NotFound, NoSuchBucket (404): ClassNotFound.
//   - SlowDown (503), Throttling, 429: ClassRateLimited, RetryAfter from a
//     Retry-After header when the server sends one (S3 itself does not:
//     the dispatcher's exponential backoff is what AWS asks for).
//   - Other 5xx and transport failures: ClassUnavailable.
//   - ExpiredToken, InvalidToken, InvalidAccessKeyId,
//     SignatureDoesNotMatch, InvalidClientTokenId: ClassUnauthorized.
//   - AccessDenied from STS (role trust, external id): ClassUnauthorized,
//     the integration owner must fix the role; AccessDenied from S3 (the
//     role's policy refuses this bucket or key while the credential works):
//     ClassInvalid, so the caller is not told to reconnect a good credential.
//   - Other 4xx: ClassInvalid.
func (c *Connector) classify(ctx context.Context, s *session, op, target string, err error) error {
	var ce *connectors.Error
	if errors.As(err, &ce) {
		return err
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return &connectors.Error{Class: connectors.ClassTimeout, Detail: fmt.Sprintf("S3 %s %s did not finish in time", op, target), Err: err}
	}
	fromSTS := isSTS(err)
	service := "S3"
	if fromSTS {
		service, op = "STS", "AssumeRole"
	}

	var api smithy.APIError
	var resp *smithyhttp.ResponseError
	hasResp := errors.As(err, &resp) && resp.Response != nil
	if !errors.As(err, &api) && !hasResp {
		// No answer from the server: connection refused, reset, TLS, DNS.
		return &connectors.Error{Class: connectors.ClassUnavailable, Detail: fmt.Sprintf("%s %s: %s cannot be reached", service, op, service), Err: err}
	}
	f := &awsFailure{Service: service, Operation: op}
	if api != nil {
		f.Code = api.ErrorCode()
	}
	var header http.Header
	if hasResp {
		f.Status, header = resp.HTTPStatusCode(), resp.Response.Header
	}
	var rerr *awshttp.ResponseError
	if errors.As(err, &rerr) {
		f.RequestID = rerr.ServiceRequestID()
	}
	if f.Code == "" {
		f.Code = http.StatusText(f.Status)
	}
	detail := fmt.Sprintf("%s %s %s: %s (HTTP %d)", service, op, target, f.Code, f.Status)
	if fromSTS {
		detail = fmt.Sprintf("STS AssumeRole of the configured role: %s (HTTP %d)", f.Code, f.Status)
	}
	out := &connectors.Error{Detail: detail, Err: f}

	switch f.Code {
	case "NoSuchKey", "NotFound", "NoSuchBucket", "NoSuchVersion":
		out.Class = connectors.ClassNotFound
	case "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException":
		out.Class, out.RetryAfter = connectors.ClassRateLimited, retryAfter(header, time.Now())
	case "ExpiredToken", "ExpiredTokenException", "InvalidToken", "InvalidAccessKeyId",
		"SignatureDoesNotMatch", "InvalidClientTokenId", "MissingAuthenticationToken", "TokenRefreshRequired":
		out.Class = connectors.ClassUnauthorized
	case "AccessDenied", "AccessDeniedException":
		out.Class = connectors.ClassInvalid
		if fromSTS {
			out.Class = connectors.ClassUnauthorized
		}
	case "InternalError", "ServiceUnavailable", "InternalFailure":
		out.Class = connectors.ClassUnavailable
	default:
		switch {
		case f.Status == http.StatusTooManyRequests:
			out.Class, out.RetryAfter = connectors.ClassRateLimited, retryAfter(header, time.Now())
		case f.Status >= 500 || f.Status == 0:
			out.Class = connectors.ClassUnavailable
		case f.Status == http.StatusNotFound:
			out.Class = connectors.ClassNotFound
		case f.Status == http.StatusUnauthorized:
			out.Class = connectors.ClassUnauthorized
		case f.Status == http.StatusForbidden && fromSTS:
			out.Class = connectors.ClassUnauthorized
		default:
			out.Class = connectors.ClassInvalid
		}
	}
	if out.Class == connectors.ClassUnauthorized && s != nil && !fromSTS {
		// S3 refused the assumed-role keys (expired early, revoked): assume
		// the role again on the next request.
		s.creds.Invalidate()
		f.keysRefused = true
	}
	c.log.Warn("s3 request failed", "service", service, "operation", op, "target", target,
		"code", f.Code, "status", f.Status, "request_id", f.RequestID, "class", out.Class)
	return out
}

// isSTS reports whether err came from the AssumeRole call (directly, or
// while the S3 client refreshed its credentials).
func isSTS(err error) bool {
	var ae *assumeError
	if errors.As(err, &ae) {
		return true
	}
	for e := err; e != nil; {
		var op *smithy.OperationError
		if errors.As(e, &op) {
			if op.ServiceID == "STS" {
				return true
			}
			e = op.Err
			continue
		}
		break
	}
	return false
}

// retryAfter is the delay of a Retry-After header; zero when there is none.
func retryAfter(h http.Header, now time.Time) time.Duration {
	d, _ := connectors.ParseRetryAfter(h.Get("Retry-After"), now)
	return d
}
