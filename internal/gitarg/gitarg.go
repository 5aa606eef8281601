// Package gitarg checks the strings that reach the git command as
// arguments: repository URLs and ref names taken from Puppetfiles, locks,
// manifests and flags. A string git could read as an option (a leading
// "-": `--upload-pack=...`, `-oProxyCommand=...`) or that hides a control
// character is refused before any command is built, so that what a
// contributor writes in a Puppetfile can never become a command line
// option, whatever the git version or configuration of the machine.
package gitarg

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Remote checks a repository URL or path. It names the problem; callers
// add where the value was read.
func Remote(s string) error {
	if s == "" {
		return fmt.Errorf("is empty")
	}
	if err := common(s); err != nil {
		return err
	}
	return nil
}

// Ref checks a tag, branch or ref name (or a commit SHA) the way git's
// check-ref-format reads a name, so that it can only ever be a ref: it
// cannot start with "-", hold a control character, a space or any of
// ~ ^ : ? * [ \, hold ".." or "@{", or start or end with "/" or ".".
func Ref(s string) error {
	if s == "" {
		return fmt.Errorf("is empty")
	}
	if err := common(s); err != nil {
		return err
	}
	for i, r := range s {
		if unicode.IsSpace(r) || strings.ContainsRune("~^:?*[\\", r) {
			return fmt.Errorf("holds %s at byte %d, which no git ref name can hold", show(r), i+1)
		}
	}
	switch {
	case strings.Contains(s, ".."):
		return fmt.Errorf("holds \"..\", which no git ref name can hold")
	case strings.Contains(s, "@{"):
		return fmt.Errorf("holds \"@{\", which no git ref name can hold")
	case strings.Contains(s, "//"):
		return fmt.Errorf("holds \"//\", which no git ref name can hold")
	case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, "."):
		return fmt.Errorf("starts or ends with \"/\" or \".\", which no git ref name can")
	case strings.HasSuffix(s, ".lock") || strings.Contains(s, "/.") || strings.Contains(s, ".lock/"):
		return fmt.Errorf("has a component that starts with \".\" or ends with \".lock\", which no git ref name can")
	}
	return nil
}

// common refuses what would make any argument unsafe.
func common(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("is not valid UTF-8")
	}
	if strings.HasPrefix(s, "-") {
		return fmt.Errorf("starts with \"-\": git would read it as an option")
	}
	for i, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == '\uFEFF' {
			return fmt.Errorf("holds the control character %s at byte %d", show(r), i+1)
		}
	}
	return nil
}

func show(r rune) string {
	if r > ' ' && r < 0x7f {
		return fmt.Sprintf("%q", r)
	}
	return fmt.Sprintf("U+%04X", r)
}
