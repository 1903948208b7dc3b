package spemu

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// tokenScope is the second field of a change token.
type tokenScope int

const (
	scopeContentDB tokenScope = 0
	scopeSite      tokenScope = 1
	scopeWeb       tokenScope = 2
	scopeList      tokenScope = 3
)

// changeToken is "version;scope;scopeGuid;ticks;changeNumber", ticks being
// .NET UTC ticks (100 ns since 0001-01-01).
type changeToken struct {
	scope tokenScope
	id    guid
	time  time.Time
	num   int64
}

// ticksAtUnixEpoch is 1970-01-01 in .NET ticks.
const ticksAtUnixEpoch = 621355968000000000

func toTicks(t time.Time) int64 { return t.UTC().UnixNano()/100 + ticksAtUnixEpoch }

func fromTicks(n int64) time.Time { return time.Unix(0, (n-ticksAtUnixEpoch)*100).UTC() }

// String is the token's StringValue.
func (t changeToken) String() string {
	return fmt.Sprintf("1;%d;%s;%d;%d", t.scope, t.id, toTicks(t.time), t.num)
}

var errTokenSyntax = errors.New("malformed change token")

// parseChangeToken parses a StringValue.
func parseChangeToken(s string) (changeToken, error) {
	f := strings.Split(s, ";")
	if len(f) != 5 || f[0] != "1" {
		return changeToken{}, fmt.Errorf("%w: %q", errTokenSyntax, s)
	}
	sc, err := strconv.Atoi(f[1])
	if err != nil || sc < 0 || sc > 3 {
		return changeToken{}, fmt.Errorf("%w: scope in %q", errTokenSyntax, s)
	}
	id, err := parseGUID(f[2])
	if err != nil {
		return changeToken{}, fmt.Errorf("%w: id in %q", errTokenSyntax, s)
	}
	ticks, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil || ticks < ticksAtUnixEpoch/2 {
		return changeToken{}, fmt.Errorf("%w: ticks in %q", errTokenSyntax, s)
	}
	num, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil || num < -1 {
		return changeToken{}, fmt.Errorf("%w: change number in %q", errTokenSyntax, s)
	}
	return changeToken{scope: tokenScope(sc), id: id, time: fromTicks(ticks), num: num}, nil
}
