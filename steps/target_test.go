package steps

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestChooseTarget(t *testing.T) {
	up := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("docker is not available: rootless Docker not found") }
	for _, tc := range []struct {
		name    string
		env     map[string]string
		docker  func(context.Context) error
		want    string
		wantErr string
	}{
		{"docker answers", nil, up, TargetContainer, ""},
		{"no docker: in-process fallback", nil, down, TargetInProcess, ""},
		{"no docker under CI fails", map[string]string{"CI": "true"}, down, "", "CI=true needs the container target"},
		{"explicit inprocess", map[string]string{"AIMACHINE_TARGET": "inprocess"}, up, TargetInProcess, ""},
		{"explicit live never asks docker", map[string]string{"AIMACHINE_TARGET": "live"}, nil, TargetLive, ""},
		{"unknown target", map[string]string{"AIMACHINE_TARGET": "vagrant"}, up, "", `AIMACHINE_TARGET="vagrant"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why, err := chooseTarget(context.Background(), func(k string) string { return tc.env[k] }, tc.docker)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want || why == "" {
				t.Fatalf("chooseTarget = %q (%q), %v; want %q", got, why, err, tc.want)
			}
		})
	}
}

func TestTimeScale(t *testing.T) {
	for v, want := range map[string]float64{"": 0, "0.05": 0.05, "1": 1} {
		if got, err := timeScale(func(string) string { return v }); err != nil || got != want {
			t.Errorf("timeScale(%q) = %v, %v", v, got, err)
		}
	}
	for _, v := range []string{"-1", "fast"} {
		if _, err := timeScale(func(string) string { return v }); err == nil {
			t.Errorf("timeScale(%q) accepted", v)
		}
	}
}
