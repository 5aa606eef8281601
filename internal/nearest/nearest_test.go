package nearest

import (
	"reflect"
	"testing"
)

func TestNames(t *testing.T) {
	t.Parallel()
	got := Names("relase/1.4", []string{"main", "release/1.4", "release/1.3", "feature/x"}, 2)
	if want := []string{"release/1.4", "release/1.3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names = %v, want %v", got, want)
	}
}

func TestVersions(t *testing.T) {
	t.Parallel()
	cands := []string{"v1.0.0", "v1.4.1", "v1.4.3", "v2.0.0", "junk"}
	got := Versions("1.4.2", cands, 3)
	if want := []string{"v1.4.3", "v1.4.1", "v1.0.0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Versions = %v, want %v", got, want)
	}
	if got := Versions("not-a-version", cands, 2); !reflect.DeepEqual(got, []string{"v2.0.0", "v1.4.3"}) {
		t.Errorf("Versions without a version = %v", got)
	}
}
