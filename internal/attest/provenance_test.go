package attest

import "testing"

func TestPlainURL(t *testing.T) {
	t.Parallel()
	if plainURL("https://bot:s3cret@git.example/control.git") != "https://git.example/control.git" {
		t.Error("credentials stay in a URI")
	}
}
