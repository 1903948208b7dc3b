package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// maxProblems bounds VerifyResult.Problems.
const maxProblems = 1000

// VerifyResult is what Verify found.
type VerifyResult struct {
	// Tenants is the number of tenant logs read.
	Tenants int
	// Records is the number of lines read, good or bad.
	Records int
	// Problems describes every break found, in file order, each naming the
	// tenant and sequence number; at most 1000, the last saying how many
	// more there were.
	Problems []string
}

// Verify re-hashes every tenant chain under dir. It returns an error when a
// file cannot be read or, wrapping the first *ChainError found, when a
// chain does not verify: a record edited (its hash, or its encoding, is
// wrong), deleted, inserted or reordered (its Seq or PrevHash does not
// follow on), moved from another tenant, or a torn last line that Open has
// not yet repaired. After a break it resumes from the record that broke,
// so each tampering is reported where it happened. Records cut off the end
// of a chain are not detectable here; compare with an anchored Log.Head.
//
// Verify reads the files as they are: run it on a directory that no Log
// has open, or on a copy, or the last line may be caught mid-write.
func Verify(ctx context.Context, dir string) (VerifyResult, error) {
	var res VerifyResult
	entries, err := os.ReadDir(dir)
	if err != nil {
		return res, fmt.Errorf("verify audit log: %w", err)
	}
	var first *ChainError
	more := 0
	report := func(e *ChainError) {
		if first == nil {
			first = e
		}
		if len(res.Problems) < maxProblems-1 {
			res.Problems = append(res.Problems, e.Error())
		} else {
			more++
		}
	}
	for _, e := range entries {
		if !e.IsDir() || checkTenant(e.Name()) != nil {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name(), fileName))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("verify audit log: %w", err)
		}
		res.Tenants++
		err = verifyTenant(ctx, e.Name(), f, &res, report)
		f.Close()
		if err != nil {
			return res, fmt.Errorf("verify audit log: tenant %s: %w", e.Name(), err)
		}
	}
	if more > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("... and %d more problems", more))
	}
	if first != nil {
		return res, fmt.Errorf("verify audit log %s: %w", dir, first)
	}
	return res, nil
}

// verifyTenant checks one tenant's chain, reporting each break.
func verifyTenant(ctx context.Context, tenant string, r io.Reader, res *VerifyResult, report func(*ChainError)) error {
	lr := newLineReader(r)
	prevSeq, prevHash := uint64(0), zeroHash
	for n := 1; ; n++ {
		line, complete, err := lr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		res.Records++
		if !complete {
			report(&ChainError{Tenant: tenant, Seq: prevSeq + 1, Line: n,
				Reason: fmt.Sprintf("torn last line: %d bytes without a newline (Open truncates it)", len(line))})
			return nil
		}
		rec, problem, err := checkLine(line)
		if err != nil {
			// Unreadable: assume it took the next place in the chain.
			report(&ChainError{Tenant: tenant, Seq: prevSeq + 1, Line: n, Reason: "line does not parse: " + err.Error()})
			prevSeq++
			continue
		}
		fail := func(reason string) {
			report(&ChainError{Tenant: tenant, Seq: rec.Seq, Line: n, Reason: reason})
		}
		switch {
		case problem != "":
			fail(problem)
		case rec.Tenant.ID != tenant:
			fail(fmt.Sprintf("record of tenant %q in this tenant's log", rec.Tenant.ID))
		case rec.Seq != prevSeq+1:
			fail(fmt.Sprintf("expected seq %d (a record was deleted, inserted or moved)", prevSeq+1))
		case rec.PrevHash != prevHash:
			fail(fmt.Sprintf("prevHash is not the hash of seq %d (a record was replaced)", prevSeq))
		}
		// Resume from this record, so one change is reported once or twice,
		// not for the rest of the chain.
		prevSeq, prevHash = rec.Seq, rec.Hash
	}
}
