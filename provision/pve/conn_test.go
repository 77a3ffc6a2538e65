package pve

import (
	"strings"
	"testing"
)

// TestDialRefusesWhatIsNotVerifiedTLS: the adapter itself refuses a URL that would carry
// credentials in clear or in the URL, whatever its caller checked.
func TestDialRefusesWhatIsNotVerifiedTLS(t *testing.T) {
	for _, tc := range []struct {
		cfg  ConnConfig
		want string
	}{
		{ConnConfig{URL: "http://127.0.0.1:8006/api2/json", TokenID: "root@pam!t", TokenSecret: "s3cret"}, "uses http://, want https://"},
		{ConnConfig{URL: "https://root:pw@127.0.0.1:8006/api2/json", TokenID: "root@pam!t", TokenSecret: "s3cret"}, "carries user:password@"},
		{ConnConfig{URL: "https://127.0.0.1:8006/api2/json", TokenID: "root@pam!t", TokenSecret: "s3cret", Insecure: true, Fingerprint: "AB"}, "Insecure with a Fingerprint or CAFile"},
	} {
		_, err := Dial(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "pw@") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Dial(%s): %v, want %q", tc.cfg.URL, err, tc.want)
		}
	}
}
