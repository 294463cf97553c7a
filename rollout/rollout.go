// Package rollout moves every replica of every shard to a new snapshot
// version with the two-phase protocol of docs/SCALING.md: Stage(V) on
// every replica, Activate(V) only once all of them hold it, then Drop of
// the versions older than the one V replaced, so that the previous
// version stays staged and activating it again is the rollback.
//
// A shard is named by a gRPC-style target whose name resolves to all of
// its replicas (a Kubernetes headless Service); each replica is then
// called on its own address, since a balanced connection would reach
// only one of them per call.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	shardv1 "github.com/tandemml/tandem/proto/tandem/shard/v1"
)

// Options configure a rollout.
type Options struct {
	// Targets holds one target per shard, in shard order: "dns:///name:port",
	// "dns://dnsserver:port/name:port", or "host:port" (a host name is
	// resolved to all of its addresses, an IP is one replica).
	Targets []string
	// Version is the snapshot version to activate.
	Version string
	// StageTimeout bounds the Stage calls (default 30 min: a replica
	// loads its part of the version from disk, and may build its index).
	StageTimeout time.Duration
	// CallTimeout bounds every other call (default 30 s).
	CallTimeout time.Duration
	// Settle is how long the rollout waits after a replica has staged
	// before it stages the next replica of the same shard (default 2 s),
	// so that clients' health watches see the first serving again first.
	Settle time.Duration
	// Dial are extra dial options (default: insecure transport).
	Dial []grpc.DialOption
}

// Replica is what the rollout did on one replica.
type Replica struct {
	Shard    int
	Addr     string
	Previous string   // the version active before
	Dropped  []string // versions dropped after the activation
}

// Report lists every replica, by shard and address.
type Report struct {
	Version  string
	Replicas []Replica
}

// replica is one connected replica.
type replica struct {
	Replica
	cc *grpc.ClientConn
	c  shardv1.ShardClient
}

// Run stages, activates and prunes Version on every replica. If any
// replica cannot be reached, is the wrong shard, or fails to stage,
// nothing is activated and the error names the replica. An Activate
// that fails part-way leaves the shards disagreeing, which roots ride
// out on the old version (they follow the version all shards report);
// running the rollout again finishes it, and drops nothing on the
// replicas that were already on the version.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Version == "" {
		return nil, errors.New("rollout: version: empty")
	}
	if len(o.Targets) == 0 {
		return nil, errors.New("rollout: shard targets: none")
	}
	if o.StageTimeout <= 0 {
		o.StageTimeout = 30 * time.Minute
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = 2 * time.Second
	}
	reps, err := connect(ctx, o)
	defer func() {
		for _, r := range reps {
			r.cc.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	if err := each(ctx, reps, o.CallTimeout, func(ctx context.Context, r *replica) error {
		in, err := r.c.Info(ctx, &shardv1.InfoRequest{})
		if err != nil {
			return err
		}
		if int(in.GetShard()) != r.Shard || int(in.GetShards()) != len(o.Targets) {
			return fmt.Errorf("answers as shard %d of %d", in.GetShard(), in.GetShards())
		}
		r.Previous = in.GetActive()
		return nil
	}); err != nil {
		return nil, fmt.Errorf("rollout: nothing changed: %w", err)
	}
	req := &shardv1.VersionRequest{Version: o.Version}
	if err := stage(ctx, reps, req, o); err != nil {
		return nil, fmt.Errorf("rollout: stage %s: nothing activated: %w", o.Version, err)
	}
	if err := each(ctx, reps, o.CallTimeout, func(ctx context.Context, r *replica) error {
		_, err := r.c.Activate(ctx, req)
		return err
	}); err != nil {
		return nil, fmt.Errorf("rollout: activate %s (run the rollout again to finish it): %w", o.Version, err)
	}
	if err := each(ctx, reps, o.CallTimeout, func(ctx context.Context, r *replica) error {
		in, err := r.c.Info(ctx, &shardv1.InfoRequest{})
		if err != nil {
			return err
		}
		if r.Previous == o.Version {
			// A rerun on a replica already on the version: what it
			// replaced is unknown here, so nothing is dropped (the
			// rollback target stays).
			return nil
		}
		for _, v := range in.GetStaged() {
			if v == o.Version || v == r.Previous {
				continue
			}
			if _, err := r.c.Drop(ctx, &shardv1.VersionRequest{Version: v}); err != nil {
				return fmt.Errorf("drop %s: %w", v, err)
			}
			r.Dropped = append(r.Dropped, v)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("rollout: %s is active; pruning old versions: %w", o.Version, err)
	}
	rep := &Report{Version: o.Version}
	for _, r := range reps {
		rep.Replicas = append(rep.Replicas, r.Replica)
	}
	return rep, nil
}

// connect resolves every shard's replicas and opens one connection to
// each.
func connect(ctx context.Context, o Options) ([]*replica, error) {
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, o.Dial...)
	var reps []*replica
	for s, t := range o.Targets {
		addrs, err := Resolve(ctx, t)
		if err != nil {
			return reps, fmt.Errorf("rollout: shard %d: %w", s, err)
		}
		// Each replica is dialled on its address but under the target's
		// name, which TLS verifies (a certificate names the Service, not
		// a pod's IP).
		dial := opts
		if name := endpointOf(t); name != "" {
			dial = append(slices.Clone(opts), grpc.WithAuthority(name))
		}
		for _, a := range addrs {
			cc, err := grpc.NewClient("passthrough:///"+a, dial...)
			if err != nil {
				return reps, fmt.Errorf("rollout: shard %d replica %s: %w", s, a, err)
			}
			reps = append(reps, &replica{Replica: Replica{Shard: s, Addr: a}, cc: cc, c: shardv1.NewShardClient(cc)})
		}
	}
	return reps, nil
}

// stage stages the version on every replica: the shards at once, the
// replicas of one shard one after another. A replica reports NOT_SERVING
// while it stages, so staging them all at once would leave a shard with
// no replica to answer.
func stage(ctx context.Context, reps []*replica, req *shardv1.VersionRequest, o Options) error {
	byShard := make([][]*replica, len(o.Targets))
	for _, r := range reps {
		byShard[r.Shard] = append(byShard[r.Shard], r)
	}
	errs := make([]error, len(byShard))
	var wg sync.WaitGroup
	for s, rs := range byShard {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, r := range rs {
				if i > 0 {
					select {
					case <-time.After(o.Settle):
					case <-ctx.Done():
						errs[s] = replicaErr(r, ctx.Err())
						return
					}
				}
				sctx, cancel := context.WithTimeout(ctx, o.StageTimeout)
				_, err := r.c.Stage(sctx, req)
				cancel()
				if err != nil {
					errs[s] = replicaErr(r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// each runs f on every replica at once, each under its own timeout, and
// joins the failures, each naming its replica.
func each(ctx context.Context, reps []*replica, timeout time.Duration, f func(context.Context, *replica) error) error {
	errs := make([]error, len(reps))
	var wg sync.WaitGroup
	for i, r := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := f(ctx, r); err != nil {
				errs[i] = replicaErr(r, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// replicaErr names the replica, and the status code of a gRPC error.
func replicaErr(r *replica, err error) error {
	if st, ok := status.FromError(err); ok {
		err = fmt.Errorf("%s: %s", st.Code(), st.Message())
	}
	return fmt.Errorf("shard %d replica %s: %w", r.Shard, r.Addr, err)
}

// endpointOf is the name:port a target resolves ("" when it names an
// address).
func endpointOf(target string) string {
	endpoint := target
	switch {
	case strings.HasPrefix(target, "dns://"):
		_, endpoint, _ = strings.Cut(strings.TrimPrefix(target, "dns://"), "/")
	case strings.Contains(target, "://"):
		return ""
	}
	if host, _, err := net.SplitHostPort(endpoint); err != nil || net.ParseIP(host) != nil {
		return ""
	}
	return endpoint
}

// Resolve returns the replica addresses ("ip:port", sorted) a target
// names. A "dns://server/" authority sends the lookups to that server.
func Resolve(ctx context.Context, target string) ([]string, error) {
	endpoint, r := target, net.DefaultResolver
	switch {
	case strings.HasPrefix(target, "dns://"):
		auth, rest, ok := strings.Cut(strings.TrimPrefix(target, "dns://"), "/")
		if !ok {
			return nil, fmt.Errorf("target %q: want dns:///name:port or dns://server/name:port", target)
		}
		endpoint = rest
		if auth != "" {
			r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, auth)
			}}
		}
	case strings.HasPrefix(target, "passthrough:///"):
		endpoint = strings.TrimPrefix(target, "passthrough:///")
	case strings.Contains(target, "://"):
		return nil, fmt.Errorf("target %q: only dns and passthrough targets can be resolved to replicas", target)
	}
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil || port == "" {
		return nil, fmt.Errorf("target %q: want host:port", target)
	}
	if net.ParseIP(host) != nil {
		return []string{net.JoinHostPort(host, port)}, nil
	}
	ips, err := r.LookupHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", target, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("target %q: no replica (no address)", target)
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = net.JoinHostPort(ip, port)
	}
	slices.Sort(out)
	return out, nil
}
