// Package credentials is the relay's credential manager: it keeps each
// tenant's connections to the SaaS systems, refreshes their tokens, and
// hands connectors the credential for a request (Manager implements
// connectors.Credentials).
//
// # Vault
//
// Secrets are sealed at rest with envelope encryption: every tenant has a
// random 256-bit data key, stored wrapped (AES-256-GCM) by the master key;
// every secret is sealed (AES-256-GCM, random nonce) with its tenant's
// data key and the AAD "tenant|system|field". The master key (base64 of 32
// bytes) comes from a file or, through main, the environment variable
// MasterKeyEnv; a wrong key is refused when the store opens. Storage is
// one SQLite file, credentials.db (WAL, synchronous=FULL, busy timeout),
// which several relay processes may share.
//
// # Connections
//
// One connection per (tenant, system): an integration owner's OAuth grant
// or an API key. Its state machine (the seed's 3.4):
//
//	INITIAL -> ACTIVE -> REFRESHING -> ACTIVE
//	                              \-> EXPIRED -> ALERT   (refresh token refused)
//	any -> REVOKED (admin); authorizing again -> ACTIVE
//
// Admin operations (List, Get, Revoke, and Handler's HTTP API) show
// Connection views, which have no secret fields.
//
// # Authorization (integration owner)
//
//	POST /v1/connections/{system}/authorize
//	    StartAuthorization: random state, PKCE verifier sealed, 10 min
//	    -> 302 the owner's browser to the provider's AuthURL
//	       ?response_type=code&state=..&code_challenge=S256(verifier)
//	provider -> GET /v1/oauth/callback?state=..&code=..
//	    CompleteAuthorization: state deleted (single use), expiry checked,
//	    code + verifier exchanged at TokenURL, connection stored ACTIVE
//
// # Refresh
//
// On demand, a Credential call refreshes a token expiring within
// RefreshAhead; Run's scanner refreshes those expiring within Window every
// ScanInterval, and Window must cover ScanInterval + MaxRefreshDuration.
// A refresh happens once however many callers and processes want it:
//
//	singleflight per (tenant, system)            once per process
//	UPDATE .. SET lease_owner, lease_until,      once across processes; the
//	  version = version + 1 WHERE version = ?    losers wait and read again
//	POST TokenURL grant_type=refresh_token       transient failures retried
//	UPDATE .. SET tokens, version = version + 1  committed (fenced by the
//	  WHERE version = lease version              lease's version) before the
//	                                             new token is handed out
//
// A response without a refresh token keeps the old one. invalid_grant is
// taken for a refused grant only if the row is unchanged since the lease
// was taken (otherwise another process rotated the token: read again);
// then the connection goes EXPIRED and an alert is posted (ALERT). A
// refresh whose lease was taken over is fenced out, keeping its tokens
// only when nobody stored newer ones. A crash between the token response
// and the commit leaves the lease to expire; the next refresh sends the
// stored refresh token again.
//
// # Service to service
//
// Services give the relay's own credentials: client credentials (Adobe
// IMS) and the JWT bearer grant (Salesforce), cached until shortly before
// they expire, and the relay's base AWS keys for STS AssumeRole; API keys
// are stored sealed per tenant (SetAPIKey), with a reminder alert before
// their rotation date.
package credentials
