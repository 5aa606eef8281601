// Package sysx holds the few calls that differ between operating systems,
// each in one place: setting a symlink's own times, running a command in a
// process group of its own, a file's hard-link count.
package sysx
