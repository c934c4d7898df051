package secretfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := Read(write("ok", "  s3cret-value\n"), "key file")
	if err != nil || string(got) != "s3cret-value" {
		t.Fatalf("Read = %q, %v", got, err)
	}
	big := strings.Repeat("x", MaxSize+1)
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing"), "cannot read key file " + filepath.Join(dir, "missing") + ": no such file or directory; check the path"},
		{write("empty", " \n\t"), "is empty; put the secret in it"},
		{write("big", big), "is larger than 64 KiB"},
		{dir, "cannot read key file " + dir + ": is a directory"},
	} {
		_, err := Read(tc.path, "key file")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.path, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "xxxx") || strings.Count(err.Error(), "\n") > 0) {
			t.Errorf("%s: error quotes the content or spans lines: %.80q", tc.path, err)
		}
	}
}
