// Package modeldir manages the versioned directory that trained models
// are published into and served from.
//
// # Layout
//
//	MODELDIR/CURRENT                              the live version's name and "\n"
//	MODELDIR/<version>/manifest.json              what the version holds, see Manifest
//	MODELDIR/<version>/l1/<route>/user.safetensors
//	MODELDIR/<version>/l1/<route>/ad.safetensors  the two towers of one L1 route
//	MODELDIR/<version>/l2_<surface>.safetensors   the L2 model of one surface
//	MODELDIR/<version>/baselines/<name>/...       baseline models, for comparison
//
// A version is written once and never changed: a training run makes a new
// version directory with [Create] (named by [NewVersionName]), writes its
// models into it, copies with [CopyFromCurrent] the models it did not
// train from the live version, writes the manifest last with
// [WriteManifest], and makes the version live with [Publish]. Readers
// find the live version with [Current] and load its manifest with
// [ReadManifest], or do both with [LoadCurrent]. [NewArtifact] and
// [HashFiles] fill in an [Artifact]'s hash, and [L1Files], [L2File] and
// [BaselineDir] give the paths of the layout above.
//
// # Atomicity
//
// The manifest and CURRENT are each written to a temporary file in the
// same directory, synced, and renamed into place, and the directory is
// then synced. A reader therefore sees the old or the new content, never
// a partial file, and after a crash the published version is complete:
// [Publish] refuses a version whose manifest is missing or lists a file
// that does not exist.
//
// # Errors
//
// Every error names the file or directory involved.
package modeldir
