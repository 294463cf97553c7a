// Package config loads, validates and hashes tandem's configuration.
//
// # The file
//
// One YAML (or JSON) document, schema Version 1. The committed default,
// default.yaml, is embedded (Default, DefaultYAML) and documents every key
// in place; Load and Parse read another. Unknown keys are rejected.
//
// # Validation
//
// Validate checks the whole document and returns every problem at once, an
// errors.Join of *FieldError values whose Path spells the field as the file
// does ("surfaces[1].view_types[0].share"). All match ErrInvalid.
//
// # Schema hash
//
// The schema part — version, tasks, products, surfaces, features, sequence
// — is what shapes data files and model inputs. SchemaHash is the sha256 of
// its canonical JSON and goes into every artifact, so that readers refuse
// data or weights made under another schema. Routing, caps, split, scales
// and the simulator's difficulty (Sim) leave it unchanged.
package config
