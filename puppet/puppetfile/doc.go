// Package puppetfile parses r10k Puppetfiles into module declarations.
//
// The parser reads the Ruby subset the Puppetfile DSL is written in and
// nothing more: forge, moduledir and mod calls (with or without
// parentheses, spread over lines, with trailing commas inside parentheses),
// single- and double-quoted strings, symbols, true/false, both hash
// syntaxes (`:key => value` and `key: value`), comments and =begin/=end.
//
// Where r10k would evaluate arbitrary Ruby or only warn, Parse fails with
// file:line:col and the module's name: unknown option keys, conflicting
// refs, duplicate modules (by short name, as r10k compares them), a missing
// :git, install paths that leave the environment, variables, loops and
// string interpolation. A golden image must never carry a silently wrong pin.
package puppetfile
