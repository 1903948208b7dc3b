// Package pki holds the certificate authority code of MCC Bridge. Agent and
// relay certificates come from smallstep step-ca (see the PKI issue); the
// devca sub-package makes throwaway certificates for tests and `make run`.
package pki
