package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/imagebake/imagebake/internal/cosignkey"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/signing"
)

func newKeyCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage signing keys (minisign format; cosign with --cosign)"}
	var dir, name, kdf string
	var cosign, unencrypted bool
	gen := &cobra.Command{
		Use:   "generate [--dir D] [--name N] [--kdf sensitive|interactive] [--cosign] [--unencrypted]",
		Short: "Make a key pair: N.key (private, password-protected) and N.pub",
		Long: `Make an ed25519 key pair in minisign's format (N.key, N.pub) for the
catalog and manifests, or with --cosign an ECDSA P-256 pair in cosign's
format (cosign.key, cosign.pub) for push --cosign-key.

The secret key is encrypted with a password: $IMAGEBAKE_KEY_PASSWORD
($COSIGN_PASSWORD with --cosign) when set, as in CI; else it is asked for
twice on the terminal. --unencrypted writes it in the clear (anyone who
reads the file can sign releases).

--kdf sets what opening the key costs, in every publish, push and revoke
(measured on 2 cores): sensitive, minisign's own default, takes about 3 s
and 1 GiB of memory; interactive (libsodium's interactive limits) about
50 ms and 19 MiB, and makes trying passwords on a stolen key file as much
cheaper. Keep sensitive for a key on a laptop; for CI, prefer a KMS key
for cosign and a sensitive minisign key in the CI's secret store, or
interactive where a runner's memory is short.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := envKeyPass
			if cosign && cmd.Flags().Changed("kdf") {
				return fmt.Errorf("%w: --kdf sets a minisign key's cost; a cosign key is encrypted as cosign does it", failure.ErrUsage)
			}
			if cosign {
				env = "COSIGN_PASSWORD"
				if !cmd.Flags().Changed("name") {
					name = "cosign"
				}
			}
			pass, err := newKeyPassword(cmd, env, unencrypted)
			if err != nil {
				return err
			}
			var pub, key string
			if cosign { // as cosign generate-key-pair writes it
				pub, key, err = cosignkey.Generate(dir, name, []byte(pass))
			} else {
				var k signing.KDF
				if k, err = signing.KDFNamed(kdf); err != nil {
					return err
				}
				pub, key, err = signing.GenerateWith(dir, name, pass, k)
			}
			if err != nil {
				return err
			}
			if pass == "" {
				fmt.Fprintf(progressOf(cmd, g), "warning: %s is not encrypted (--unencrypted): anyone who can read it can sign releases\n", key)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n%s\n", pub, key)
			return nil
		},
	}
	gen.Flags().StringVar(&dir, "dir", ".", "where to write the keys")
	gen.Flags().StringVar(&name, "name", "imagebake", "file name of the keys, without extension (cosign with --cosign)")
	gen.Flags().StringVar(&kdf, "kdf", signing.Sensitive.Name, "the password's cost to open: sensitive (minisign's default: about 3 s and 1 GiB) or interactive (about 50 ms and 19 MiB); not with --cosign")
	gen.Flags().BoolVar(&cosign, "cosign", false, "a cosign key pair (ECDSA P-256) for push --cosign-key, readable by cosign")
	gen.Flags().BoolVar(&unencrypted, "unencrypted", false, "write the secret key unencrypted (no password)")
	cmd.AddCommand(gen)
	return cmd
}

// newKeyPassword is the password a new secret key is encrypted with: the
// variable env when set (CI), "" with --unencrypted, else asked twice on
// the terminal. Without any of them the key is not written.
func newKeyPassword(cmd *cobra.Command, env string, unencrypted bool) (string, error) {
	if p := envSetting(env); p != "" {
		return p, nil
	}
	if unencrypted {
		return "", nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", usageErr("the secret key would be written in the clear: set %s to its password (CI), run on a terminal to be asked, or pass --unencrypted", env)
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(cmd.ErrOrStderr(), prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		return string(b), err
	}
	p, err := ask("password for the new secret key: ")
	if err != nil {
		return "", err
	}
	again, err := ask("the same again: ")
	if err != nil {
		return "", err
	}
	if p != again || p == "" {
		return "", usageErr("the passwords differ or are empty; nothing written")
	}
	return p, nil
}
