package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestBenchRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "--vm NAME is required"},
		{[]string{"bench", "--vm", "vm-llm-aimachine", "--concurrency", "1,x"}, "want comma-separated integers from 1 to 256"},
		{[]string{"bench", "--vm", "vm-llm-aimachine", "--concurrency", "0"}, "want comma-separated integers from 1 to 256"},
		{[]string{"bench", "--vm", "vm-llm-aimachine", "--duration", "11m"}, "at most 10m0s per level"},
		{[]string{"bench", "--vm", "vm-llm-aimachine", "--max-requests", "0"}, "must be at least 1"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

func TestParseLevels(t *testing.T) {
	got, err := parseLevels("1, 4,16,4")
	if err != nil || len(got) != 3 || got[0] != 1 || got[1] != 4 || got[2] != 16 {
		t.Errorf("parseLevels: %v %v", got, err)
	}
}
