//go:build xds

package serve

// Built with -tags xds, the binary also resolves xds:/// targets: a
// root's -shard-targets can name shards through an xDS control plane
// (a service mesh) instead of DNS, with the balancing, health and retry
// settings the control plane sends. The default build leaves the xDS
// client and its dependencies out.
import _ "google.golang.org/grpc/xds"
