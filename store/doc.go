// Package store holds the artifacts that the refresh tasks hand to one
// another: named byte strings in a local directory or a bucket of object
// storage.
//
// # Interface
//
// A [Store] puts, gets, lists and deletes whole objects by name. Names are
// slash-separated relative paths ("embed/0-of-3"); a name's bytes are
// replaced as a whole, never seen half-written, so a task killed while
// writing leaves the previous object or none, and its rerun overwrites it.
// Get of a missing name returns an error wrapping [ErrNotFound].
//
// # Implementations
//
// [Open] takes a URL:
//
//	/path/to/dir, file:///path/to/dir   a local directory (Dir): each Put writes a temporary
//	                                    file in the target's directory, syncs it and renames it
//	                                    over the name
//	s3://bucket?region=R&endpoint=URL&use_path_style=true&disable_https=true
//	                                    S3 or an S3-compatible server, through gocloud.dev/blob
//	                                    (credentials from the AWS environment and config files)
//	mem://                              an in-memory bucket (tests)
//
// Every bucket URL takes prefix=P/ to keep one run's artifacts under P/. A
// bucket writer commits on Close: an object appears whole or not at all.
package store
