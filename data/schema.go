package data

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// schemaOf returns the Parquet schema of T, or an error where parquet-go
// cannot map T to one (it panics).
func schemaOf[T any]() (schema *parquet.Schema, err error) {
	defer func() {
		if v := recover(); v != nil {
			schema, err = nil, fmt.Errorf("row type %v has no Parquet schema: %v", reflect.TypeFor[T](), v)
		}
	}()
	if t := reflect.TypeFor[T](); t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("row type %v is not a struct", t)
	}
	return parquet.SchemaOf(new(T)), nil
}

// checkSchema compares a Parquet file's schema with the schema of the rows
// it is read into. Every wanted column must be in the file with a compatible
// type, and the file must have no other column. The result joins one
// *RowError (Row -1) per bad column, wanted columns first, in schema order.
func checkSchema(file string, want, got parquet.Node) error {
	var errs []error
	add := func(column string, err error) {
		errs = append(errs, &RowError{File: file, Row: -1, Column: column, Err: err})
	}
	gotFields := got.Fields()
	for _, w := range want.Fields() {
		g := fieldByName(gotFields, w.Name())
		if g == nil {
			add(w.Name(), ErrMissingColumn)
			continue
		}
		if err := compareNodes(nil, w, g); err != nil {
			add(w.Name(), err)
		}
	}
	wantFields := want.Fields()
	for _, g := range gotFields {
		if fieldByName(wantFields, g.Name()) == nil {
			add(g.Name(), ErrUnknownColumn)
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// compareNodes returns an ErrWrongType error if the file's node g cannot be
// read as the wanted node w; path is the position below the top-level column.
func compareNodes(path []string, w, g parquet.Node) error {
	if w.Leaf() != g.Leaf() || repetition(w) != repetition(g) ||
		(w.Leaf() && !compatibleTypes(w.Type(), g.Type())) ||
		(!w.Leaf() && !sameGroupType(w.Type(), g.Type())) {
		return wrongType(path, w, g)
	}
	if w.Leaf() {
		return nil
	}
	gFields, wFields := g.Fields(), w.Fields()
	for _, wf := range wFields {
		gf := fieldByName(gFields, wf.Name())
		if gf == nil {
			return wrongType(path, w, g)
		}
		if err := compareNodes(append(path, wf.Name()), wf, gf); err != nil {
			return err
		}
	}
	if len(gFields) != len(wFields) {
		return wrongType(path, w, g)
	}
	return nil
}

func wrongType(path []string, w, g parquet.Node) error {
	at := ""
	if len(path) > 0 {
		at = " at " + strings.Join(path, ".")
	}
	hint := ""
	if g.Optional() && !w.Optional() {
		hint = " (a nullable column: tandem tables have no nulls; write it as non-nullable, e.g. a pyarrow field with nullable=False)"
	}
	return errorOf(ErrWrongType, "wrong type%s: file has %s, want %s%s", at, describe(g), describe(w), hint)
}

// compatibleTypes reports whether a leaf of type g reads as type w: the
// same physical type and the same logical type, where a plain INT32 or INT64
// counts as the signed integer of its width.
func compatibleTypes(w, g parquet.Type) bool {
	if parquet.EqualTypes(w, g) {
		return true
	}
	return w.Kind() == g.Kind() && leafLogicalName(w) == leafLogicalName(g)
}

// sameGroupType reports whether two groups have the same logical type
// (LIST, MAP or none). Group types have no physical kind.
func sameGroupType(w, g parquet.Type) bool {
	wl, gl := w.LogicalType(), g.LogicalType()
	if wl == nil || gl == nil {
		return wl == nil && gl == nil
	}
	return wl.String() == gl.String()
}

// leafLogicalName names a leaf type's logical type, with a plain INT32 or
// INT64 named like its signed integer annotation.
func leafLogicalName(t parquet.Type) string {
	if lt := t.LogicalType(); lt != nil {
		return lt.String()
	}
	switch t.Kind() {
	case parquet.Int32:
		return "INT(32,true)"
	case parquet.Int64:
		return "INT(64,true)"
	}
	return ""
}

func repetition(n parquet.Node) string {
	switch {
	case n.Repeated():
		return "repeated"
	case n.Optional():
		return "optional"
	}
	return "required"
}

// describe names a node's type for error messages, e.g.
// "required INT(64,true)" or "required group (LIST)".
func describe(n parquet.Node) string {
	if n.Leaf() {
		return fmt.Sprintf("%s %v", repetition(n), n.Type())
	}
	if lt := n.Type().LogicalType(); lt != nil {
		return fmt.Sprintf("%s group (%v)", repetition(n), lt)
	}
	return repetition(n) + " group"
}

func fieldByName(fields []parquet.Field, name string) parquet.Field {
	for _, f := range fields {
		if f.Name() == name {
			return f
		}
	}
	return nil
}
