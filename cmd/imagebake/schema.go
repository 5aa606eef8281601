package main

import (
	"encoding/json"
	"fmt"

	"github.com/invopop/jsonschema"
	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/deploy"
)

// schemaBase is where the schemas are published (the repository's
// docs/schemas), their $id.
const schemaBase = "https://raw.githubusercontent.com/imagebake/imagebake/main/docs/schemas/"

// schemas are the JSON Schemas of the files users write, made from the Go
// types that read them.
var schemas = map[string]func() *jsonschema.Schema{
	"deploy": func() *jsonschema.Schema {
		r := &jsonschema.Reflector{RequiredFromJSONSchemaTags: true, DoNotReference: true}
		s := r.Reflect(&deploy.Document{})
		s.ID = schemaBase + "deploy.schema.json"
		s.Title = "imagebake deploy file"
		s.Description = "The images a deployment uses, chosen from a catalog by version (docs/deploy-files.md)."
		return s
	},
	"config": func() *jsonschema.Schema {
		r := &jsonschema.Reflector{RequiredFromJSONSchemaTags: true, DoNotReference: true, FieldNameTag: "toml"}
		s := r.Reflect(&bake.Config{})
		s.ID = schemaBase + "config.schema.json"
		s.Title = "imagebake.toml"
		s.Description = "How a control repository's releases are baked (docs/formats.md); TOML, checked as the JSON it reads as."
		return s
	},
}

// schemaJSON is the schema called name, indented, with a final newline.
func schemaJSON(name string) ([]byte, error) {
	mk, ok := schemas[name]
	if !ok {
		return nil, usageErr("no schema %q: want deploy or config", name)
	}
	b, err := json.MarshalIndent(mk(), "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func newSchemaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "schema deploy|config",
		Short: "Print the JSON Schema of deploy files or imagebake.toml (also in docs/schemas)",
		Long: `Print the JSON Schema of a deploy file (deploy) or of imagebake.toml
(config), for editors and validators. Deploy files imagebake writes carry
a "# yaml-language-server: $schema=..." line, so editors with the YAML
language server check them as they are typed.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"deploy", "config"},
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := schemaJSON(args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), string(b))
			return err
		},
	}
}
