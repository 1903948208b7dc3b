// Package s3 is the dispatcher's Amazon S3 connector (id "s3"): it lists,
// reads and writes objects in a fixed set of service buckets in a
// tenant's AWS account, as an IAM role the relay assumes there.
//
// Authentication is STS AssumeRole with an ExternalId. The dispatcher
// hands Execute the relay's base credential for the tenant
// (Credential.Values "access_key_id", "secret_access_key" and, for
// temporary base credentials, "session_token"); the connector signs an
// AssumeRole call with it for Config.RoleARN and Config.ExternalID and
// signs S3 requests with the temporary keys it gets back. Those are
// cached per (tenant, base access key), in a bounded map, until shortly
// before they expire, so STS is called once per session, not per request.
//
//	dispatcher --Execute(base keys)--> connector
//	  connector: cache hit? ---------------------------- yes --+
//	      | no                                                 |
//	      v                                                    v
//	  POST {sts}/ Action=AssumeRole&RoleArn&RoleSessionName    S3 request
//	      &ExternalId&DurationSeconds (SigV4, base key)        (SigV4, ASIA key,
//	  <- AssumeRoleResponse Credentials{AccessKeyId,           X-Amz-Security-Token)
//	     SecretAccessKey, SessionToken, Expiration} --cache-->
//
// Every operation uses the service-to-service pattern: S3 has no per-user
// OAuth grant, and the buckets belong to the tenant's account, reached
// through the role its administrator set up for the relay. Nothing is
// attributed to a person at AWS (CloudTrail shows the role session
// "mcc-bridge-<tenant>"); the dispatcher's audit record names the caller.
//
// The connector does not retry failures of S3 itself (the SDK's retryer is
// disabled): the dispatcher retries, honouring RetryAfter. The one retry
// it makes is when S3 refuses the cached assumed-role keys (ExpiredToken,
// InvalidToken, ...: expired early or revoked): it drops them, assumes the
// role again and runs the operation once more, because the session is the
// relay's own cache, not something the caller chose.
package s3
