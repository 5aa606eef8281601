package deploy

// Document is a deploy file's shape, for its JSON Schema
// (docs/schemas/deploy.schema.json, `imagebake schema deploy`): editors
// check a file against it as it is typed. Parse reads the YAML itself, to
// keep every value's position; both name the same keys (the example
// deploy file passes both: TestSchemasInAValidator).
type Document struct {
	// Catalog is the catalog the images are chosen from: a store
	// directory, its catalog.toml, an https:// URL or s3://BUCKET/PREFIX.
	Catalog string `json:"catalog,omitempty" jsonschema:"minLength=1"`
	// Images are named selections, one per image the file uses.
	Images map[string]Selected `json:"images,omitempty"`
	// Image, Version and Arch select one image without a name.
	Image   string `json:"image,omitempty" jsonschema:"minLength=1"`
	Version string `json:"version,omitempty" jsonschema:"minLength=1"`
	Arch    any    `json:"arch,omitempty" jsonschema:"oneof_type=string;array"`
}

// Selected is one named selection of a Document.
type Selected struct {
	// Image is the family (the image's name without release and arch).
	Image string `json:"image" jsonschema:"required,minLength=1"`
	// Version is a version query: 1.4, 1.4.2, ~1.4, ^1.4.2, >=1.2 <2,
	// latest.
	Version string `json:"version" jsonschema:"required,minLength=1"`
	// Arch is one arch or a list (default: every arch of the release).
	Arch any `json:"arch,omitempty" jsonschema:"oneof_type=string;array"`
}
